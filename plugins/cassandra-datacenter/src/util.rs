//! Small pure helpers: time formatting (the snapshot's clock is all we have), a stable hash
//! for pod templates, and Kubernetes quantity parsing for the storage check.

/// Formats Unix milliseconds as an RFC 3339 UTC timestamp with second precision, the form
/// `metav1.Time` serialises to, so a status we write compares equal to what we read back.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Parses an RFC 3339 timestamp (`2024-01-02T03:04:05Z`, fractions and offsets tolerated)
/// into Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut offset = 0i64;
    if let Some(pos) = s[19..].find(['+', '-']) {
        let tz = &s[19 + pos..];
        let sign = if tz.starts_with('-') { -1 } else { 1 };
        let hh = tz.get(1..3)?.parse::<i64>().ok()?;
        let mm = tz.get(4..6)?.parse::<i64>().ok()?;
        offset = sign * (hh * 3600 + mm * 60);
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    u64::try_from(secs).ok().map(|s| s * 1000)
}

// Howard Hinnant's civil calendar algorithms (public domain).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// FNV-1a, 64 bits, as 16 hex digits. Stable across builds and platforms (unlike
/// `DefaultHasher`), which matters because the value lands in pod annotations.
pub fn fnv_hex(data: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// JSON text with object keys sorted at every level, whatever the map type: the input of
/// hashes that must not depend on serde_json's `preserve_order` feature being on.
pub fn canonical_json(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&m[k])))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// Bytes of a Kubernetes quantity (`100Gi`, `5G`, `512Mi`, `1e9`, `1500`); None when it
/// does not parse. Precision is that of f64, plenty for a capacity estimate.
pub fn quantity_bytes(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "m" => 1e-3,
        _ => return None,
    };
    Some(n * mult)
}

/// A quantity in the canonical form the API server stores (`1024Mi` → `1Gi`, `1000m` → `1`,
/// `0.5` → `500m`, `1500M` stays), so desired objects compare equal to live ones and an
/// unchanged plan writes nothing. None when the input is not understood (kept as is).
pub fn canonical_quantity(q: &str) -> Option<String> {
    let (int, frac, suffix) = k8ssandra_api::quantity::quantity_parts(q)?;
    let numerator: i128 = format!("{int}{frac}").parse().ok()?;
    let denominator: i128 = 10i128.pow(frac.len() as u32);
    let binary = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if let Some(k) = binary.iter().position(|b| *b == suffix) {
        let scaled = numerator * 1024i128.pow(k as u32 + 1);
        if scaled % denominator == 0 {
            let bytes = scaled / denominator;
            if bytes >= 1024 {
                let mut k = 0;
                while k < binary.len() && bytes % 1024i128.pow(k as u32 + 1) == 0 {
                    k += 1;
                }
                let unit = if k == 0 { "" } else { binary[k - 1] };
                return Some(format!("{}{unit}", bytes / 1024i128.pow(k as u32)));
            }
        }
        return decimal_milli(scaled, denominator);
    }
    let exp = match suffix {
        "m" => 0,
        "" => 3,
        "k" => 6,
        "M" => 9,
        "G" => 12,
        "T" => 15,
        "P" => 18,
        "E" => 21,
        _ => return None,
    };
    decimal_milli(numerator * 10i128.pow(exp), denominator)
}

/// `numerator / denominator` milli-units, rounded up to a whole milli, in decimal SI form.
fn decimal_milli(numerator: i128, denominator: i128) -> Option<String> {
    let milli = (numerator + denominator - 1).checked_div(denominator)?;
    if milli % 1000 != 0 {
        return Some(format!("{milli}m"));
    }
    let mut v = milli / 1000;
    if v == 0 {
        return Some("0".into());
    }
    let units = ["", "k", "M", "G", "T", "P", "E"];
    let mut i = 0;
    while i + 1 < units.len() && v % 1000 == 0 {
        v /= 1000;
        i += 1;
    }
    Some(format!("{v}{}", units[i]))
}

/// Rewrites every `resources.requests` / `resources.limits` quantity under `v` in
/// canonical form.
pub fn canonicalize_resources(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if k == "resources"
                    && let Value::Object(r) = child
                {
                    for part in ["requests", "limits"] {
                        if let Some(Value::Object(q)) = r.get_mut(part) {
                            for val in q.values_mut() {
                                if let Some(c) = val.as_str().and_then(canonical_quantity) {
                                    *val = Value::String(c);
                                }
                            }
                        }
                    }
                }
                canonicalize_resources(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(canonicalize_resources),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn canonical_quantities() {
        let c = |s: &str| canonical_quantity(s).unwrap();
        assert_eq!(c("1Gi"), "1Gi");
        assert_eq!(c("1024Mi"), "1Gi");
        assert_eq!(c("1536Mi"), "1536Mi");
        assert_eq!(c("0.5Gi"), "512Mi");
        assert_eq!(c("1000m"), "1");
        assert_eq!(c("0.5"), "500m");
        assert_eq!(c("100m"), "100m");
        assert_eq!(c("1000M"), "1G");
        assert_eq!(c("1500M"), "1500M");
        assert_eq!(c("256M"), "256M");
        assert_eq!(c("2"), "2");
        assert_eq!(c("2000"), "2k");
        assert_eq!(c("0"), "0");
        assert_eq!(canonical_quantity("1e3"), None);
    }

    use super::*;

    #[test]
    fn time_round_trips() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.5+01:00"),
            Some(1_700_000_000_000)
        );
        assert_eq!(parse_rfc3339("nope"), None);
        let leap = 951_782_400_000; // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
        assert_eq!(parse_rfc3339(&rfc3339(leap)), Some(leap));
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity_bytes("1Gi"), Some(1024f64.powi(3)));
        assert_eq!(quantity_bytes("5G"), Some(5e9));
        assert_eq!(quantity_bytes("1500"), Some(1500.0));
        assert_eq!(quantity_bytes("1e3"), Some(1000.0));
        assert_eq!(quantity_bytes("x"), None);
    }

    #[test]
    fn canonical_sorts_keys() {
        let v = serde_json::json!({"b": [1, {"d": 1, "c": "x"}], "a": null});
        assert_eq!(canonical_json(&v), r#"{"a":null,"b":[1,{"c":"x","d":1}]}"#);
    }

    #[test]
    fn hash_is_stable() {
        assert_eq!(fnv_hex(""), "cbf29ce484222325");
        assert_ne!(fnv_hex("a"), fnv_hex("b"));
    }
}
