//! Links: query stripping, hosts, ids in paths, Sentry API URLs → web pages.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn strip_query(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    clip(url[..end].trim(), 1_000)
}

/// The lowercase `host[:port]` of an absolute URL.
pub(crate) fn host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let host = authority.rsplit('@').next()?.to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// The id right after `marker` in a URL path (`.../issues/1234/...` → `1234`).
pub(super) fn path_id(url: &str, marker: &str) -> Option<String> {
    path_segment_after(url, marker, 0).filter(|id| id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// The `n`th path segment after `marker`.
pub(super) fn path_segment_after(url: &str, marker: &str, n: usize) -> Option<String> {
    let path = &url[..url.find(['?', '#']).unwrap_or(url.len())];
    let rest = &path[path.find(marker)? + marker.len()..];
    rest.split('/').nth(n).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// An event's `web_url` cut back to its issue page: `.../issues/<id>/events/<eid>/` → `.../issues/<id>/`.
pub(super) fn issue_page(url: &str) -> Option<String> {
    let url = strip_query(url);
    let start = url.find("/issues/")? + "/issues/".len();
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    (end > start).then(|| format!("{}/", &url[..end]))
}

/// `https://host/api/0/organizations/<org>/issues/<id>/` → `https://host/organizations/<org>/issues/<id>/`.
/// The org-less form (`/api/0/issues/<id>/`) has no web equivalent without the org, so `None`.
pub(super) fn web_from_api_url(url: &str) -> Option<String> {
    let url = strip_query(url);
    let (base, rest) = url.split_once("/api/0/")?;
    if !rest.starts_with("organizations/") || !rest.contains("/issues/") {
        return None;
    }
    issue_page(&format!("{base}/{rest}"))
}
