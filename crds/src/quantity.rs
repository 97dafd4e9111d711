//! Kubernetes resource quantities (`512Mi`, `1.5G`, `100m`): parsing and the forms the API
//! server writes, shared by the policies that render resources.

/// The integer digits, fraction digits and suffix of a quantity (`1.5Gi` → `("1", "5",
/// "Gi")`), surrounding blanks ignored; None without digits or with more than 18 on either
/// side of the point (beyond what the API server keeps).
pub fn quantity_parts(q: &str) -> Option<(&str, &str, &str)> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.len() > 18 || int.len() > 18 {
        return None;
    }
    Some((int, frac, suffix))
}

/// Bytes of a Kubernetes quantity (`512Mi`, `1G`, `1e9`, `1500`); None when it does not
/// parse. Fractions round down, which is what a byte count means.
pub fn quantity_bytes(q: &str) -> Option<u128> {
    let (int, frac, suffix) = quantity_parts(q)?;
    let scale = 10u128.pow(frac.len() as u32);
    let n: u128 = format!("{int}{frac}").parse().ok()?;
    let mult: u128 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        s if s.starts_with(['e', 'E']) => 10u128.checked_pow(s[1..].parse().ok()?)?,
        _ => return None,
    };
    n.checked_mul(mult).map(|b| b / scale)
}

/// A byte count as the API server writes a memory quantity: the largest binary unit that
/// divides it (`536870912` → `512Mi`), else plain bytes.
pub fn bytes_quantity(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let mut unit = "";
    let mut n = bytes;
    for u in UNITS {
        if n == 0 || !n.is_multiple_of(1024) {
            break;
        }
        n /= 1024;
        unit = u;
    }
    format!("{n}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_bytes_and_forms() {
        assert_eq!(quantity_parts(" 1.5Gi"), Some(("1", "5", "Gi")));
        assert_eq!(quantity_parts("Gi"), None);
        assert_eq!(quantity_bytes("256Mi"), Some(256 << 20));
        assert_eq!(quantity_bytes("1G"), Some(1_000_000_000));
        assert_eq!(quantity_bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(quantity_bytes("1e3"), Some(1000));
        assert_eq!(quantity_bytes("lots"), None);
        assert_eq!(bytes_quantity(1 << 30), "1Gi");
        assert_eq!(bytes_quantity(512 << 20), "512Mi");
        assert_eq!(bytes_quantity(1000), "1000");
    }
}
