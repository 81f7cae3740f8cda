//! The fakes' search index: which issues may contain a term, so that a search checks those instead
//! of every issue's text. A real search API has an index; without one, each search scanned every
//! issue the fake held, and a 1,000-alert drain (two searches an alert) spent more CPU in the fakes
//! than in the consumer, on the same cores as workerd.
//!
//! An issue's texts are indexed by their trigrams, ASCII letters folded to lower case. An ASCII term
//! that a text contains, ignoring ASCII case, has each of its trigrams in that text's, so the
//! issues holding every trigram of the term are a superset of the matches; the search then checks
//! those as before ([`super::Term`]). Texts are only ever added: a changed text adds its new
//! trigrams and keeps the old ones, which can only widen the candidates, never drop a match.

use rustc_hash::FxHashMap;

/// Trigram → the issues (their index in the fake's list, ascending) whose texts hold it.
#[derive(Debug, Default)]
pub struct TrigramIndex {
    postings: FxHashMap<[u8; 3], Vec<u32>>,
}

impl TrigramIndex {
    /// Indexes `text` as one of the texts of the issue at `at`. Issues are added in ascending
    /// order (a fake's list only grows); a text indexed again for an earlier issue is merged in.
    pub fn add(&mut self, at: usize, text: &str) {
        let Ok(at) = u32::try_from(at) else { return };
        for gram in text.as_bytes().windows(3) {
            let gram = [gram[0].to_ascii_lowercase(), gram[1].to_ascii_lowercase(), gram[2].to_ascii_lowercase()];
            let issues = self.postings.entry(gram).or_default();
            match issues.last() {
                Some(&last) if last == at => {}
                Some(&last) if last > at => {
                    if let Err(slot) = issues.binary_search(&at) {
                        issues.insert(slot, at);
                    }
                }
                _ => issues.push(at),
            }
        }
    }

    /// The issues that may contain `term` (lower case), ascending; `None` when the index cannot
    /// tell (a term shorter than three bytes, or not ASCII): every issue must be checked.
    pub fn candidates(&self, term: &str) -> Option<Vec<usize>> {
        if !term.is_ascii() || term.len() < 3 {
            return None;
        }
        let mut lists: Vec<&[u32]> = Vec::new();
        for gram in term.as_bytes().windows(3) {
            let gram = [gram[0], gram[1], gram[2]];
            match self.postings.get(&gram) {
                Some(list) => lists.push(list),
                None => return Some(Vec::new()),
            }
        }
        lists.sort_by_key(|list| list.len());
        let (shortest, rest) = lists.split_first()?;
        let found = shortest.iter().filter(|at| rest.iter().all(|list| list.binary_search(at).is_ok()));
        Some(found.map(|&at| at as usize).collect())
    }

    /// The issues that may contain every one of `terms` (a search whose terms must all match):
    /// [`TrigramIndex::candidates`] of each indexable term, intersected; `None` when none is.
    pub fn candidates_for_all<'a>(&self, terms: impl IntoIterator<Item = &'a str>) -> Option<Vec<usize>> {
        let mut found: Option<Vec<usize>> = None;
        for term in terms {
            if let Some(these) = self.candidates(term) {
                found = Some(match found {
                    None => these,
                    Some(before) => before.into_iter().filter(|at| these.binary_search(at).is_ok()).collect(),
                });
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The candidates always include every issue whose text contains the term, whatever its case.
    #[test]
    fn candidates_hold_every_match() {
        let texts = [
            "TypeError: Cannot read properties of undefined",
            "BenchError 12: boom",
            "BenchError 123: boom\nat handler (src/app.ts:12:3)",
            "naïve größe ÄRGER",
            "short",
        ];
        let mut index = TrigramIndex::default();
        for (at, text) in texts.iter().enumerate() {
            index.add(at, text);
        }
        for term in ["typeerror", "bencherror 12", "bencherror 123", "boom", "app.ts:12", "ärger", "gr", "xyz", "short"]
        {
            let matches: Vec<usize> =
                texts.iter().enumerate().filter(|(_, t)| t.to_lowercase().contains(term)).map(|(at, _)| at).collect();
            match index.candidates(term) {
                Some(candidates) => {
                    assert!(matches.iter().all(|m| candidates.contains(m)), "{term}: {candidates:?} ⊉ {matches:?}");
                }
                None => assert!(!term.is_ascii() || term.len() < 3, "{term} is indexable"),
            }
        }
        assert_eq!(index.candidates("bencherror 123"), Some(vec![2]));
        assert_eq!(index.candidates("xyz"), Some(vec![]));
    }

    /// A text changed later adds its trigrams: the issue is found by its new text (and may still
    /// be a candidate for its old one, which the search's own check then rules out).
    #[test]
    fn a_changed_text_is_found() {
        let mut index = TrigramIndex::default();
        index.add(0, "first title");
        index.add(1, "other");
        index.add(0, "renamed entirely");
        assert_eq!(index.candidates("renamed"), Some(vec![0]));
        assert_eq!(index.candidates_for_all(["first", "other"]), Some(vec![]));
        assert_eq!(index.candidates_for_all(["ot", "oth"]), Some(vec![1]));
        assert_eq!(index.candidates_for_all(["ot"]), None);
    }
}
