//! The rules on a RepairSchedule, on its raw JSON (so a wrong type is named by its field
//! instead of failing the parse): `(field, message)` each, phrased for the user.

use serde_json::Value;

use k8ssandra_repair::check::{boolean, check_repair, spec_of, uint};

/// Whether `t` is an ISO-8601 date and time, `YYYY-MM-DDTHH:MM:SS`, optionally with `Z`.
fn iso_datetime(t: &str) -> bool {
    let t = t.strip_suffix('Z').unwrap_or(t);
    let b = t.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

/// Every broken rule of the object.
pub fn check(obj: &Value) -> Vec<(String, String)> {
    let spec = match spec_of(obj) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let mut out = check_repair(spec);
    if let Some(v) = spec.get("daysBetween").filter(|v| !v.is_null())
        && v.as_u64().is_none_or(|d| d == 0)
    {
        out.push((
            "spec.daysBetween".to_string(),
            format!("{v} is not allowed: the days between two runs, a whole number of at least 1"),
        ));
    }
    uint(spec, "percentUnrepairedThreshold", 1, 100, &mut out);
    if let Some(t) = spec.get("triggerTime").filter(|v| !v.is_null())
        && !t.as_str().is_some_and(iso_datetime)
    {
        out.push((
            "spec.triggerTime".to_string(),
            format!("{t} is not an ISO-8601 time in UTC such as 2026-12-08T02:00:00"),
        ));
    }
    for field in ["adaptive", "paused"] {
        boolean(spec, field, &mut out);
    }
    out
}
