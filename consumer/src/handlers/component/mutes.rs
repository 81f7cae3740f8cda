//! Active mutes, for `/bugbot status`. The mute itself lives in the fingerprint's claim (every
//! repeat already asks it, so a mute costs a repeat nothing); this KV index (`mute:{fingerprint}`,
//! expiring with the mute) only lets the status command list them, and each entry is checked
//! against the claim before it is shown (a regression ends a mute before its entry expires).

use bugbot_shared::claim::{FingerprintOp, FingerprintRecord, FingerprintReply};
use serde::{Deserialize, Serialize};

use crate::clients::http::HttpPort;
use crate::runtime::ctx::Ctx;
use crate::store::ports::{ClaimPort, KvPort};

use crate::store::keys::{self, MUTE_PREFIX as PREFIX};
/// KV's shortest expiration.
const MIN_TTL_SECS: u64 = 60;
/// At most this many mutes are listed.
const MAX_LISTED: usize = 10;

/// One entry of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MuteEntry {
    pub fingerprint: String,
    pub until_ms: u64,
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub issue_url: Option<String>,
}

/// Notes (or, after an unmute, lets expire) the fingerprint's entry.
pub async fn remember<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    fingerprint: &str,
    record: &FingerprintRecord,
) {
    let entry = MuteEntry {
        fingerprint: fingerprint.to_owned(),
        until_ms: record.muted_until_ms,
        by: record.muted_by.clone(),
        issue_url: record.tracked.primary_url().map(str::to_owned),
    };
    let ttl = (record.muted_until_ms.saturating_sub(ctx.now_ms) / 1_000).max(MIN_TTL_SECS);
    let text = serde_json::to_string(&entry).expect("a mute entry serializes");
    let _ = ctx.state.kv().put_text(&keys::mute(fingerprint), text, ttl).await;
}

/// The mutes that hold now, each confirmed by its claim.
pub async fn active<P: HttpPort, C: ClaimPort, K: KvPort>(ctx: &Ctx<'_, P, C, K>) -> Vec<MuteEntry> {
    let listed = ctx.state.kv().list_keys(PREFIX, 100).await;
    let mut out = Vec::new();
    for name in listed {
        if out.len() >= MAX_LISTED {
            break;
        }
        let Some(fingerprint) = name.strip_prefix(PREFIX) else { continue };
        let Ok(FingerprintReply::Record { record: Some(r) }) =
            ctx.claims.fingerprint(fingerprint, &FingerprintOp::Get).await
        else {
            continue;
        };
        if r.is_muted(ctx.now_ms) {
            out.push(MuteEntry {
                fingerprint: fingerprint.to_owned(),
                until_ms: r.muted_until_ms,
                by: r.muted_by.clone(),
                issue_url: r.tracked.primary_url().map(str::to_owned),
            });
        }
    }
    out
}

/// The status command's lines for them.
pub fn describe(mutes: &[MuteEntry], now_ms: u64) -> Vec<String> {
    if mutes.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![format!("**Muted** ({}):", mutes.len())];
    for m in mutes {
        let hours = m.until_ms.saturating_sub(now_ms).div_ceil(3_600_000);
        let by = m.by.as_deref().map(|u| format!(" by <@{u}>")).unwrap_or_default();
        let what = m
            .issue_url
            .as_deref()
            .map_or_else(|| format!("`{}`", m.fingerprint), |u| format!("<{u}> (`{}`)", m.fingerprint));
        lines.push(format!("• {what}{by}, {hours} h left (or until it regresses)"));
    }
    lines
}
