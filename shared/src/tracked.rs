//! The tracked issue: one issue bugbot filed or follows, in Linear or GitHub. One model for every
//! place that names one — a fingerprint's claim (`TrackedRefs`, one per tracker), a conversation's
//! record, a fix run's target — so that what is known of an issue is spelled once.
//!
//! Records written before this model (a Linear issue as `{id, identifier, url}`, a GitHub issue as
//! `{number, url}`, a tracker spelled `git_hub`) are still read: [`linear_compat`] and
//! [`github_compat`] accept both shapes.

use serde::{Deserialize, Deserializer, Serialize};

/// Which tracker holds an issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tracker {
    #[serde(rename = "linear")]
    Linear,
    #[serde(rename = "github", alias = "git_hub")]
    GitHub,
}

/// One issue in Linear or GitHub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRef {
    pub tracker: Tracker,
    /// Linear's UUID, or the GitHub issue number.
    pub id: String,
    /// What people call it: `ENG-12` or `#34`.
    pub label: String,
    pub url: String,
    /// Its title, where it is known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
}

impl IssueRef {
    /// A Linear issue: its UUID, its identifier (`ENG-12`) and URL.
    pub fn linear(id: impl Into<String>, identifier: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            tracker: Tracker::Linear,
            id: id.into(),
            label: identifier.into(),
            url: url.into(),
            title: String::new(),
        }
    }

    /// A GitHub issue: its number and URL.
    pub fn github(number: u64, url: impl Into<String>) -> Self {
        Self {
            tracker: Tracker::GitHub,
            id: number.to_string(),
            label: format!("#{number}"),
            url: url.into(),
            title: String::new(),
        }
    }

    #[must_use]
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// The GitHub issue number, for a GitHub issue.
    pub fn github_number(&self) -> Option<u64> {
        (self.tracker == Tracker::GitHub).then(|| self.id.parse().ok()).flatten()
    }

    /// The Linear UUID, for a Linear issue.
    pub fn linear_id(&self) -> Option<&str> {
        (self.tracker == Tracker::Linear).then_some(self.id.as_str())
    }
}

/// A Linear issue as stored before [`IssueRef`], or as it is now.
#[derive(Deserialize)]
#[serde(untagged)]
enum LinearWire {
    Now(IssueRef),
    Before { id: String, identifier: String, url: String },
}

/// A GitHub issue as stored before [`IssueRef`], or as it is now.
#[derive(Deserialize)]
#[serde(untagged)]
enum GitHubWire {
    Now(IssueRef),
    Before { number: u64, url: String },
}

/// Reads an optional Linear issue in either shape.
///
/// # Errors
/// When the value is neither shape.
pub fn linear_compat<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IssueRef>, D::Error> {
    Ok(Option::<LinearWire>::deserialize(d)?.map(|wire| match wire {
        LinearWire::Now(issue) => issue,
        LinearWire::Before { id, identifier, url } => IssueRef::linear(id, identifier, url),
    }))
}

/// Reads an optional GitHub issue in either shape.
///
/// # Errors
/// When the value is neither shape.
pub fn github_compat<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IssueRef>, D::Error> {
    Ok(Option::<GitHubWire>::deserialize(d)?.map(|wire| match wire {
        GitHubWire::Now(issue) => issue,
        GitHubWire::Before { number, url } => IssueRef::github(number, url),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Both {
        #[serde(default, deserialize_with = "linear_compat")]
        linear: Option<IssueRef>,
        #[serde(default, deserialize_with = "github_compat")]
        github: Option<IssueRef>,
    }

    #[test]
    fn records_from_before_read_as_issue_refs() {
        let before: Both = serde_json::from_str(
            r#"{"linear":{"id":"u-1","identifier":"ENG-1","url":"https://linear.app/x/issue/ENG-1"},
                "github":{"number":7,"url":"https://github.com/o/r/issues/7"}}"#,
        )
        .unwrap();
        assert_eq!(before.linear, Some(IssueRef::linear("u-1", "ENG-1", "https://linear.app/x/issue/ENG-1")));
        let github = before.github.unwrap();
        assert_eq!((github.label.as_str(), github.github_number()), ("#7", Some(7)));
        assert_eq!(github.linear_id(), None);
        let now = serde_json::to_string(&github).unwrap();
        assert_eq!(now, r##"{"tracker":"github","id":"7","label":"#7","url":"https://github.com/o/r/issues/7"}"##);
        let again: Both = serde_json::from_str(&format!(r#"{{"github":{now}}}"#)).unwrap();
        assert_eq!(again.github, Some(github));
        let none: Both = serde_json::from_str("{}").unwrap();
        assert!(none.linear.is_none() && none.github.is_none());
    }

    #[test]
    fn a_conversation_record_from_before_keeps_its_tracker() {
        let issue: IssueRef = serde_json::from_str(
            r##"{"tracker":"git_hub","id":"34","label":"#34","url":"https://github.com/o/r/issues/34","title":"T"}"##,
        )
        .unwrap();
        assert_eq!((issue.tracker, issue.github_number(), issue.title.as_str()), (Tracker::GitHub, Some(34), "T"));
    }
}
