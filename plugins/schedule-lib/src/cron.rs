//! Cron expressions as Kubernetes CronJob accepts them: five fields (minute, hour,
//! day-of-month, month, day-of-week) with lists, ranges, steps and names, the descriptors
//! `@yearly` … `@hourly`, `@every <duration>`, and an optional `CRON_TZ=`/`TZ=` prefix.
//!
//! Times are evaluated in a time zone (UTC unless one is given). Around daylight-saving
//! changes a local time that does not exist (spring forward) runs at the first minute after
//! the gap, and a local time that exists twice (fall back) runs once, at its first
//! occurrence — as classic cron does, so no run is lost and none doubles.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::ScheduleError;

/// How far ahead a next run is looked for. 28 years is the full period of the Gregorian
/// weekday/leap-year cycle, so an expression with no run in it never runs.
const SEARCH_DAYS: i64 = 28 * 366;

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    kind: Kind,
    tz: Tz,
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Fields(Fields),
    /// `@every <duration>`: a fixed interval after the previous run.
    Every(u64),
}

#[derive(Clone, Debug, PartialEq)]
struct Fields {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    // Classic cron: when both day fields are restricted a day matching either runs; a field
    // written starting with `*` does not restrict.
    dom_star: bool,
    dow_star: bool,
}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DOM: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
// 7 is Sunday too, as in most crons; it is folded onto 0 after parsing.
const DOW: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

impl Schedule {
    /// Parses `expr`, in `time_zone` (an IANA name such as `Europe/Berlin`) when given.
    /// A `CRON_TZ=` prefix and `time_zone` together are refused: which one wins would be
    /// a guess.
    pub fn parse(expr: &str, time_zone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let mut rest = expr.trim();
        let mut zone = None;
        if let Some(tail) = rest
            .strip_prefix("CRON_TZ=")
            .or_else(|| rest.strip_prefix("TZ="))
        {
            let (z, r) = tail.split_once(char::is_whitespace).ok_or_else(|| {
                ScheduleError::Cron("a CRON_TZ= prefix must be followed by a schedule".into())
            })?;
            zone = Some(z);
            rest = r.trim();
        }
        let tz = match (zone, time_zone.filter(|z| !z.is_empty())) {
            (Some(_), Some(_)) => {
                return Err(ScheduleError::Cron(
                    "has a CRON_TZ= prefix and a time zone is also set; give only one".into(),
                ));
            }
            (Some(z), None) => parse_tz(z).map_err(|_| {
                ScheduleError::Cron(format!("CRON_TZ={z} is not a known IANA time zone"))
            })?,
            (None, Some(z)) => parse_tz(z)?,
            (None, None) => Tz::UTC,
        };
        let kind = if let Some(d) = rest.strip_prefix("@every") {
            Kind::Every(parse_duration(d.trim())?)
        } else if let Some(name) = rest.strip_prefix('@') {
            let fields = match name.to_ascii_lowercase().as_str() {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                _ => {
                    return Err(ScheduleError::Cron(format!(
                        "unknown descriptor @{name} (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, @every <duration>)"
                    )));
                }
            };
            Kind::Fields(parse_fields(fields)?)
        } else {
            Kind::Fields(parse_fields(rest)?)
        };
        Ok(Schedule { kind, tz })
    }

    /// The time zone runs are computed in.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// The first run strictly after `after_ms` (Unix milliseconds), or None if the
    /// expression never matches (such as `0 0 30 2 *`).
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        match &self.kind {
            Kind::Every(ms) => after_ms.checked_add(*ms),
            Kind::Fields(f) => f.next_after(self.tz, after_ms),
        }
    }
}

fn parse_tz(z: &str) -> Result<Tz, ScheduleError> {
    z.parse::<Tz>()
        .map_err(|_| ScheduleError::TimeZone(z.to_string()))
}

fn parse_fields(expr: &str) -> Result<Fields, ScheduleError> {
    let parts: Vec<&str> = expr.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(ScheduleError::Cron(format!(
            "`{expr}` has {} fields; a schedule has five: minute hour day-of-month month day-of-week",
            parts.len()
        )));
    }
    let mut dow = parse_field(parts[4], &DOW)?;
    if dow & (1 << 7) != 0 {
        dow = (dow | 1) & !(1 << 7);
    }
    Ok(Fields {
        minutes: parse_field(parts[0], &MINUTE)?,
        hours: parse_field(parts[1], &HOUR)?,
        days_of_month: parse_field(parts[2], &DOM)?,
        months: parse_field(parts[3], &MONTH)?,
        days_of_week: dow,
        dom_star: parts[2].starts_with('*') || parts[2] == "?",
        dow_star: parts[4].starts_with('*') || parts[4] == "?",
    })
}

fn parse_field(text: &str, spec: &FieldSpec) -> Result<u64, ScheduleError> {
    let err = |why: String| ScheduleError::Cron(format!("{} field `{text}`: {why}", spec.name));
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| err(format!("step `{s}` is not a number")))?;
                if step == 0 {
                    return Err(err("a step must be at least 1".into()));
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a, spec).map_err(&err)?, value(b, spec).map_err(&err)?);
            if a > b {
                return Err(err(format!("range {a}-{b} runs backwards")));
            }
            (a, b)
        } else {
            let v = value(range, spec).map_err(&err)?;
            // `a/n` means from a to the end in steps of n.
            (v, if step.is_some() { spec.max } else { v })
        };
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

fn value(text: &str, spec: &FieldSpec) -> Result<u32, String> {
    if let Some(i) = spec.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        // Month names start at 1, day names at 0 (SUN).
        return Ok(i as u32 + spec.min);
    }
    let v: u32 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number or a known name"))?;
    if v < spec.min || v > spec.max {
        return Err(format!("{v} is out of range {}-{}", spec.min, spec.max));
    }
    Ok(v)
}

/// Go-style durations as `@every` takes them: `1h30m`, `90s`, `2h`. At least one minute,
/// since runs are created at most once a minute.
fn parse_duration(text: &str) -> Result<u64, ScheduleError> {
    let err = || {
        ScheduleError::Cron(format!(
            "@every `{text}`: give a duration such as 30m, 1h or 1h30m, at least 1m"
        ))
    };
    if text.is_empty() {
        return Err(err());
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| err())?;
        num.clear();
        let unit = match c {
            'h' => 3_600_000,
            'm' => 60_000,
            's' => 1_000,
            _ => return Err(err()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(err)?;
    }
    if !num.is_empty() || total < 60_000 {
        return Err(err());
    }
    Ok(total)
}

impl Fields {
    fn day_matches(&self, d: NaiveDate) -> bool {
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let dom = self.days_of_month & (1 << d.day()) != 0;
        let dow = self.days_of_week & (1 << d.weekday().num_days_from_sunday()) != 0;
        match (self.dom_star, self.dow_star) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    fn next_after(&self, tz: Tz, after_ms: u64) -> Option<u64> {
        let after = DateTime::<Utc>::from_timestamp_millis(i64::try_from(after_ms).ok()?)?;
        // Start a day early: near a daylight-saving change the previous local day can
        // still hold a time after `after`.
        let first = after.with_timezone(&tz).date_naive().pred_opt()?;
        for d in 0..SEARCH_DAYS {
            let date = first.checked_add_signed(Duration::days(d))?;
            if !self.day_matches(date) {
                continue;
            }
            for h in (0..24).filter(|h| self.hours & (1 << h) != 0) {
                for m in (0..60).filter(|m| self.minutes & (1 << m) != 0) {
                    let local = date.and_hms_opt(h, m, 0)?;
                    let at = resolve(tz, local)?;
                    if at > after_ms {
                        return Some(at);
                    }
                }
            }
        }
        None
    }
}

/// The instant of a local time: its first occurrence when it is ambiguous, the end of the
/// gap when it does not exist.
fn resolve(tz: Tz, local: NaiveDateTime) -> Option<u64> {
    let mut t = local;
    // Real gaps are at most a few hours; the bound only stops a corrupt zone looping.
    for _ in 0..(26 * 60) {
        if let Some(dt) = tz.from_local_datetime(&t).earliest() {
            // A gap's end can fall mid-minute in historic zones; runs are whole minutes.
            let dt = dt.with_second(0).unwrap_or(dt);
            return u64::try_from(dt.timestamp_millis()).ok();
        }
        t += Duration::minutes(1);
    }
    None
}
