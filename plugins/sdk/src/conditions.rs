//! Kubernetes conditions as policies write them: a condition's `lastTransitionTime` stays
//! what it was while its status does not change, so a status written on every reconcile
//! compares equal to the stored one and causes no write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// One condition to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Cond {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Cond {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// A Kubernetes `Time` of Unix milliseconds.
pub fn time(ms: u64) -> Time {
    Time(Timestamp::from_millisecond(ms as i64).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// Unix milliseconds of a Kubernetes `Time`.
pub fn ms(t: &Time) -> u64 {
    t.0.as_millisecond().max(0) as u64
}

/// The conditions `wanted`, each with the transition time of its previous version when its
/// status did not change, and `now_ms` when it did or is new.
pub fn conditions(prev: Option<&[Condition]>, now_ms: u64, wanted: Vec<Cond>) -> Vec<Condition> {
    wanted
        .into_iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let since = prev
                .and_then(|p| p.iter().find(|p| p.type_ == c.type_))
                .filter(|p| p.status == status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or_else(|| time(now_ms));
            Condition {
                type_: c.type_.to_string(),
                status: status.to_string(),
                reason: c.reason.to_string(),
                message: c.message,
                last_transition_time: since,
                observed_generation: None,
            }
        })
        .collect()
}

/// The status of condition `t`: Some(true/false), None when absent or Unknown.
pub fn is(conditions: Option<&[Condition]>, t: &str) -> Option<bool> {
    conditions?
        .iter()
        .find(|c| c.type_ == t)
        .and_then(|c| match c.status.as_str() {
            "True" => Some(true),
            "False" => Some(false),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transition_time_moves_only_with_the_status() {
        let first = conditions(None, 1_000, vec![Cond::new("Ready", false, "Waiting", "x")]);
        let same = conditions(
            Some(&first),
            9_000,
            vec![Cond::new("Ready", false, "Waiting", "y")],
        );
        assert_eq!(same[0].last_transition_time, time(1_000));
        assert_eq!(same[0].message, "y");
        let flipped = conditions(
            Some(&same),
            12_000,
            vec![Cond::new("Ready", true, "Done", "")],
        );
        assert_eq!(flipped[0].last_transition_time, time(12_000));
        assert_eq!(is(Some(&flipped), "Ready"), Some(true));
        assert_eq!(is(Some(&flipped), "Failed"), None);
    }
}
