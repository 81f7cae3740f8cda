//! The daily auto-fix caps (`AUTO_FIX_MAX_RUNS_PER_DAY`, `AUTO_FIX_MAX_USD_PER_DAY`), as a pure state
//! machine applied atomically by the consumer's `ClaimStore` Durable Object (one record per UTC day).
//!
//! A run **reserves** a slot before it starts, and its result **charges** it (its cost added) or the
//! start's failure **cancels** it. Counting only finished runs let a burst of confident alerts all see
//! zero runs and all start; counting reservations with the finished runs, under one object's lock,
//! lets exactly `max_runs` start.

use serde::{Deserialize, Serialize};

/// One day's auto-fix spending.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CapsRecord {
    /// Runs that reported back today, and what they cost.
    pub runs: u32,
    pub usd: f64,
    /// Runs started and not yet reported back (by the id of the job that started them).
    #[serde(default)]
    pub reserved: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum CapsOp {
    /// Take a slot for `run` if the caps allow one (idempotent: a run's retry keeps its slot).
    Reserve { run: String, max_runs: u32, max_usd: f64 },
    /// `run` finished and cost `usd`: its slot becomes a counted run (once).
    Charge { run: String, usd: f64 },
    /// `run` did not start after all: give its slot back.
    Cancel { run: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum CapsReply {
    Reserved,
    /// No slot: why, to tell people.
    Full {
        reason: String,
    },
    Ok,
}

/// Applies `op`; returns the record to store (if changed) and the reply.
pub fn caps(record: Option<CapsRecord>, op: CapsOp) -> (Option<CapsRecord>, CapsReply) {
    let mut r = record.unwrap_or_default();
    match op {
        CapsOp::Reserve { run, .. } if r.reserved.contains(&run) => (None, CapsReply::Reserved),
        CapsOp::Reserve { max_runs, .. } if r.runs.saturating_add(slots(&r)) >= max_runs => {
            (None, CapsReply::Full { reason: format!("the daily cap of {max_runs} auto-fix runs is reached") })
        }
        CapsOp::Reserve { max_usd, .. } if r.usd >= max_usd => {
            (None, CapsReply::Full { reason: format!("the daily auto-fix budget of ${max_usd:.2} is spent") })
        }
        CapsOp::Reserve { run, .. } => {
            r.reserved.push(run);
            (Some(r), CapsReply::Reserved)
        }
        CapsOp::Charge { run, usd } => match r.reserved.iter().position(|x| *x == run) {
            Some(i) => {
                r.reserved.remove(i);
                r.runs = r.runs.saturating_add(1);
                r.usd += usd.max(0.0);
                (Some(r), CapsReply::Ok)
            }
            None => (None, CapsReply::Ok),
        },
        CapsOp::Cancel { run } => match r.reserved.iter().position(|x| *x == run) {
            Some(i) => {
                r.reserved.remove(i);
                (Some(r), CapsReply::Ok)
            }
            None => (None, CapsReply::Ok),
        },
    }
}

fn slots(r: &CapsRecord) -> u32 {
    u32::try_from(r.reserved.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(stored: &mut Option<CapsRecord>, op: CapsOp) -> CapsReply {
        let (next, reply) = caps(stored.clone(), op);
        if next.is_some() {
            *stored = next;
        }
        reply
    }

    fn reserve(run: &str) -> CapsOp {
        CapsOp::Reserve { run: run.into(), max_runs: 2, max_usd: 10.0 }
    }

    #[test]
    fn a_burst_of_ten_reserves_exactly_two_slots() {
        let mut stored = None;
        let replies: Vec<CapsReply> = (0..10).map(|i| apply(&mut stored, reserve(&format!("job-{i}")))).collect();
        assert_eq!(replies.iter().filter(|r| **r == CapsReply::Reserved).count(), 2);
        assert!(matches!(&replies[2], CapsReply::Full { reason } if reason.contains("daily cap of 2")));
        // A reserving run's retry keeps its slot; a cancelled slot is free again.
        assert_eq!(apply(&mut stored, reserve("job-0")), CapsReply::Reserved);
        apply(&mut stored, CapsOp::Cancel { run: "job-1".into() });
        assert_eq!(apply(&mut stored, reserve("job-9")), CapsReply::Reserved);
    }

    #[test]
    fn results_charge_once_and_the_budget_caps_too() {
        let mut stored = None;
        apply(&mut stored, reserve("a"));
        apply(&mut stored, CapsOp::Charge { run: "a".into(), usd: 12.5 });
        apply(&mut stored, CapsOp::Charge { run: "a".into(), usd: 12.5 });
        let r = stored.clone().unwrap();
        assert_eq!((r.runs, r.usd, r.reserved.len()), (1, 12.5, 0), "a repeated result is charged once");
        assert!(matches!(apply(&mut stored, reserve("b")), CapsReply::Full { reason } if reason.contains("budget")));
    }

    #[test]
    fn wire_format() {
        let op = CapsOp::Charge { run: "j".into(), usd: 0.5 };
        assert_eq!(serde_json::to_string(&op).unwrap(), r#"{"op":"charge","run":"j","usd":0.5}"#);
    }
}
