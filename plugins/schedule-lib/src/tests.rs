use super::*;

fn at(s: &str) -> u64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis() as u64
}

fn show(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .unwrap()
        .to_rfc3339()
}

fn next(expr: &str, tz: Option<&str>, after: &str) -> Option<String> {
    Schedule::parse(expr, tz)
        .unwrap()
        .next_after(at(after))
        .map(show)
}

fn err(expr: &str, tz: Option<&str>) -> String {
    Schedule::parse(expr, tz).unwrap_err().to_string()
}

fn run(name: &str, when: &str, state: RunState) -> Run {
    Run {
        name: name.into(),
        scheduled_ms: at(when),
        state,
    }
}

#[test]
fn bad_expressions_say_which_field_and_rule() {
    assert!(err("* * * *", None).contains("has 4 fields"));
    assert!(err("61 * * * *", None).contains("minute field `61`: 61 is out of range 0-59"));
    assert!(err("* 24 * * *", None).contains("hour field"));
    assert!(err("* * 0 * *", None).contains("day-of-month field `0`"));
    assert!(err("* * * FOO *", None).contains("month field `FOO`"));
    assert!(err("*/0 * * * *", None).contains("a step must be at least 1"));
    assert!(err("5-1 * * * *", None).contains("runs backwards"));
    assert!(err("@fortnightly", None).contains("unknown descriptor @fortnightly"));
    assert!(err("@every 10s", None).contains("at least 1m"));
    assert!(err("@every", None).contains("@every"));
    assert!(err("0 2 * * *", Some("Mars/Olympus")).contains("`Mars/Olympus` is not a known IANA"));
    assert!(err("CRON_TZ=Nowhere/City 0 2 * * *", None).contains("CRON_TZ=Nowhere/City"));
    assert!(err("CRON_TZ=UTC 0 2 * * *", Some("UTC")).contains("give only one"));
}

#[test]
fn next_after_fields_names_and_descriptors() {
    let n = |e: &str, a: &str| next(e, None, a);
    assert_eq!(
        n("*/15 * * * *", "2026-01-05T12:07:30Z").unwrap(),
        "2026-01-05T12:15:00+00:00"
    );
    // Strictly after: a run exactly at `after` is the previous one.
    assert_eq!(
        n("0 2 * * *", "2026-01-05T02:00:00Z").unwrap(),
        "2026-01-06T02:00:00+00:00"
    );
    // 2026-01-03 is a Saturday: the next weekday morning in Q1 is Monday the 5th.
    assert_eq!(
        n("0 9 * jan-MAR MON-FRI", "2026-01-03T10:00:00Z").unwrap(),
        "2026-01-05T09:00:00+00:00"
    );
    // 7 is Sunday, as 0 is.
    assert_eq!(
        n("0 0 * * 7", "2026-01-05T00:00:00Z").unwrap(),
        "2026-01-11T00:00:00+00:00"
    );
    // Both day fields restricted: either matches (the 13th, or a Friday).
    assert_eq!(
        n("0 0 13 * 5", "2026-01-05T00:00:00Z").unwrap(),
        "2026-01-09T00:00:00+00:00"
    );
    assert_eq!(
        n("0 0 13 * 5", "2026-01-09T00:00:00Z").unwrap(),
        "2026-01-13T00:00:00+00:00"
    );
    assert_eq!(
        n("1-10/3,30 * * * *", "2026-01-05T12:04:00Z").unwrap(),
        "2026-01-05T12:07:00+00:00"
    );
    assert_eq!(
        n("@hourly", "2026-01-05T12:04:00Z").unwrap(),
        "2026-01-05T13:00:00+00:00"
    );
    assert_eq!(
        n("@weekly", "2026-01-05T12:04:00Z").unwrap(),
        "2026-01-11T00:00:00+00:00"
    );
    assert_eq!(
        n("@yearly", "2026-01-05T12:04:00Z").unwrap(),
        "2027-01-01T00:00:00+00:00"
    );
    assert_eq!(
        n("@every 1h30m", "2026-01-05T12:04:00Z").unwrap(),
        "2026-01-05T13:34:00+00:00"
    );
    assert_eq!(
        n("0 0 29 2 *", "2025-03-01T00:00:00Z").unwrap(),
        "2028-02-29T00:00:00+00:00"
    );
    assert_eq!(n("0 0 30 2 *", "2025-03-01T00:00:00Z"), None);
}

#[test]
fn time_zone_and_daylight_saving() {
    let ny = Some("America/New_York");
    assert_eq!(
        next("0 9 * * *", ny, "2026-01-10T00:00:00Z").unwrap(),
        "2026-01-10T14:00:00+00:00"
    );
    assert_eq!(
        next("0 9 * * *", ny, "2026-07-10T00:00:00Z").unwrap(),
        "2026-07-10T13:00:00+00:00"
    );
    // The prefix form is the same zone.
    assert_eq!(
        next(
            "CRON_TZ=America/New_York 0 9 * * *",
            None,
            "2026-07-10T00:00:00Z"
        )
        .unwrap(),
        "2026-07-10T13:00:00+00:00"
    );
    let berlin = Some("Europe/Berlin");
    // 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that day: the run
    // happens at the end of the gap, once, and the next day at 02:30 CEST again.
    let first = next("30 2 * * *", berlin, "2026-03-28T12:00:00Z").unwrap();
    assert_eq!(first, "2026-03-29T01:00:00+00:00");
    assert_eq!(
        next("30 2 * * *", berlin, &first).unwrap(),
        "2026-03-30T00:30:00+00:00"
    );
    // Every quarter hour through the gap: 01:45 CET, then 03:00 CEST (02:00..02:45 collapse
    // into it), then 03:15.
    let s = Schedule::parse("*/15 * * * *", berlin).unwrap();
    let mut t = at("2026-03-29T00:40:00Z");
    let mut seen = Vec::new();
    for _ in 0..3 {
        t = s.next_after(t).unwrap();
        seen.push(show(t));
    }
    assert_eq!(
        seen,
        [
            "2026-03-29T00:45:00+00:00",
            "2026-03-29T01:00:00+00:00",
            "2026-03-29T01:15:00+00:00"
        ]
    );
    // 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice: one run, at
    // the first one.
    let first = next("30 2 * * *", berlin, "2026-10-24T12:00:00Z").unwrap();
    assert_eq!(first, "2026-10-25T00:30:00+00:00");
    assert_eq!(
        next("30 2 * * *", berlin, &first).unwrap(),
        "2026-10-26T01:30:00+00:00"
    );
}

#[test]
fn first_run_after_creation() {
    let s = Schedule::parse("* * * * *", None).unwrap();
    let created = at("2026-01-05T12:00:10Z");
    let d = decide(
        &s,
        &Settings::default(),
        None,
        created,
        at("2026-01-05T12:00:50Z"),
        &[],
    );
    assert_eq!(d.start, None);
    assert_eq!(d.last_scheduled_ms, None);
    assert_eq!(d.next_ms, Some(at("2026-01-05T12:01:00Z")));
    assert_eq!(d.requeue_after_ms, Some(10_000));

    let d = decide(
        &s,
        &Settings::default(),
        None,
        created,
        at("2026-01-05T12:01:05Z"),
        &[],
    );
    assert_eq!(d.start, Some(at("2026-01-05T12:01:00Z")));
    assert_eq!(d.last_scheduled_ms, d.start);
    assert_eq!(d.next_ms, Some(at("2026-01-05T12:02:00Z")));
    assert_eq!(d.requeue_after_ms, Some(55_000));
}

#[test]
fn missed_runs_collapse_into_the_most_recent() {
    let s = Schedule::parse("* * * * *", None).unwrap();
    let last = at("2026-01-05T10:00:00Z");
    let d = decide(
        &s,
        &Settings::default(),
        Some(last),
        0,
        at("2026-01-05T12:30:10Z"),
        &[],
    );
    assert_eq!(d.start, Some(at("2026-01-05T12:30:00Z")));
    // A sparse schedule missed for more than a year still finds its last due time.
    let s = Schedule::parse("0 3 1 1 *", None).unwrap();
    let d = decide(
        &s,
        &Settings::default(),
        Some(at("2020-01-01T03:00:00Z")),
        0,
        at("2026-06-01T00:00:00Z"),
        &[],
    );
    assert_eq!(d.start, Some(at("2026-01-01T03:00:00Z")));
}

#[test]
fn starting_deadline_skips_late_runs() {
    let s = Schedule::parse("0 * * * *", None).unwrap();
    let last = Some(at("2026-01-05T10:00:00Z"));
    let now = at("2026-01-05T12:30:00Z");
    let tight = Settings {
        starting_deadline_ms: Some(600_000),
        ..Settings::default()
    };
    let d = decide(&s, &tight, last, 0, now, &[]);
    assert_eq!(
        d.start, None,
        "12:00 is 30 min late, the deadline is 10 min"
    );
    assert_eq!(d.last_scheduled_ms, last);
    assert_eq!(d.next_ms, Some(at("2026-01-05T13:00:00Z")));
    let loose = Settings {
        starting_deadline_ms: Some(3_600_000),
        ..Settings::default()
    };
    assert_eq!(
        decide(&s, &loose, last, 0, now, &[]).start,
        Some(at("2026-01-05T12:00:00Z"))
    );
}

#[test]
fn forbid_waits_for_the_active_run_then_starts_the_due_one() {
    let s = Schedule::parse("* * * * *", None).unwrap();
    let last = Some(at("2026-01-05T12:00:00Z"));
    let now = at("2026-01-05T12:01:20Z");
    let mut runs = vec![run(
        "s-1767614400",
        "2026-01-05T12:00:00Z",
        RunState::Active,
    )];
    let d = decide(&s, &Settings::default(), last, 0, now, &runs);
    assert_eq!(d.start, None);
    assert_eq!(d.blocked_by, ["s-1767614400"]);
    assert_eq!(d.last_scheduled_ms, last, "the due run is still owed");
    assert!(d.requeue_after_ms.unwrap() <= 30_000);

    runs[0].state = RunState::Succeeded;
    let d = decide(&s, &Settings::default(), last, 0, now, &runs);
    assert_eq!(d.start, Some(at("2026-01-05T12:01:00Z")));
    assert!(d.blocked_by.is_empty());
}

#[test]
fn allow_overlaps_and_replace_deletes_the_active_run() {
    let s = Schedule::parse("* * * * *", None).unwrap();
    let last = Some(at("2026-01-05T12:00:00Z"));
    let now = at("2026-01-05T12:01:20Z");
    let runs = vec![run(
        "s-1767614400",
        "2026-01-05T12:00:00Z",
        RunState::Active,
    )];
    let allow = Settings {
        concurrency: Concurrency::Allow,
        ..Settings::default()
    };
    let d = decide(&s, &allow, last, 0, now, &runs);
    assert_eq!(d.start, Some(at("2026-01-05T12:01:00Z")));
    assert!(d.replace.is_empty());
    let replace = Settings {
        concurrency: Concurrency::Replace,
        ..Settings::default()
    };
    let d = decide(&s, &replace, last, 0, now, &runs);
    assert_eq!(d.start, Some(at("2026-01-05T12:01:00Z")));
    assert_eq!(d.replace, ["s-1767614400"]);
}

#[test]
fn suspended_skips_due_runs_without_owing_them() {
    let s = Schedule::parse("* * * * *", None).unwrap();
    let paused = Settings {
        suspended: true,
        ..Settings::default()
    };
    let d = decide(
        &s,
        &paused,
        Some(at("2026-01-05T12:00:00Z")),
        0,
        at("2026-01-05T12:05:20Z"),
        &[],
    );
    assert_eq!(d.start, None);
    assert_eq!(d.last_scheduled_ms, Some(at("2026-01-05T12:05:00Z")));
}

#[test]
fn a_run_created_but_not_recorded_is_not_started_again() {
    let s = Schedule::parse("* * * * *", None).unwrap();
    let runs = vec![run(
        "s-1767614460",
        "2026-01-05T12:01:00Z",
        RunState::Active,
    )];
    let allow = Settings {
        concurrency: Concurrency::Allow,
        ..Settings::default()
    };
    let d = decide(
        &s,
        &allow,
        Some(at("2026-01-05T12:00:00Z")),
        0,
        at("2026-01-05T12:01:30Z"),
        &runs,
    );
    assert_eq!(d.start, None);
    assert_eq!(d.last_scheduled_ms, Some(at("2026-01-05T12:01:00Z")));
}

#[test]
fn history_keeps_the_newest_finished_runs_of_each_outcome() {
    let mut runs = Vec::new();
    for (i, state) in [
        RunState::Succeeded,
        RunState::Failed,
        RunState::Succeeded,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Active,
        RunState::Succeeded,
    ]
    .into_iter()
    .enumerate()
    {
        runs.push(Run {
            name: format!("r{i}"),
            scheduled_ms: i as u64 * 60_000,
            state,
        });
    }
    let settings = Settings {
        successful_history: 2,
        failed_history: 1,
        ..Settings::default()
    };
    let mut pruned = prune(&runs, &settings);
    pruned.sort();
    assert_eq!(pruned, ["r0", "r1", "r2", "r3", "r4"]);
    // Limits of zero delete every finished run, never an active one.
    let none = Settings {
        successful_history: 0,
        failed_history: 0,
        ..Settings::default()
    };
    assert!(!prune(&runs, &none).contains(&"r7".to_string()));
    assert_eq!(prune(&runs, &none).len(), 8);
}

#[test]
fn run_names_carry_their_time() {
    let t = at("2026-01-05T12:01:00Z");
    assert_eq!(run_name("nightly", t), "nightly-1767614460");
    assert_eq!(scheduled_ms_of("nightly", "nightly-1767614460"), Some(t));
    // Another schedule whose name extends this one's is not ours.
    assert_eq!(scheduled_ms_of("nightly", "nightly-b-1767614460"), None);
    assert_eq!(scheduled_ms_of("nightly", "nightly-"), None);
}

#[test]
fn concurrency_policy_parsing() {
    let all = [
        Concurrency::Allow,
        Concurrency::Forbid,
        Concurrency::Replace,
    ];
    assert_eq!(
        Concurrency::parse(None, Concurrency::Forbid, &all),
        Ok(Concurrency::Forbid)
    );
    assert_eq!(
        Concurrency::parse(Some("Allow"), Concurrency::Forbid, &all),
        Ok(Concurrency::Allow)
    );
    let two = [Concurrency::Allow, Concurrency::Forbid];
    let e = Concurrency::parse(Some("Replace"), Concurrency::Forbid, &two).unwrap_err();
    assert_eq!(
        e.to_string(),
        "`Replace` is not a concurrency policy of this kind; use Allow or Forbid"
    );
    assert!(Concurrency::parse(Some("forbid"), Concurrency::Forbid, &two).is_err());
}
