//! Names derived from user input, cleaned the way the upstream operators clean them so the
//! objects we create have the names users and tools already know.

/// Whether `s` is a DNS-1035 label: at most 63 characters, lower-case letters, digits and
/// '-', starting with a letter and ending with a letter or digit.
pub fn is_dns1035_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

/// Whether `s` is a DNS-1123 subdomain: at most 253 characters, dot-separated labels of
/// lower-case letters, digits and '-', each starting and ending with a letter or digit.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// Every leftmost-longest match of `[a-z]([-a-z0-9]*[a-z0-9])?` in `s`, concatenated.
fn dns1035_matches(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_lowercase() {
            i += 1;
            continue;
        }
        // Longest run of [-a-z0-9] from here, then trim trailing '-' (the match must end in
        // an alphanumeric).
        let mut j = i + 1;
        while j < b.len() && (b[j].is_ascii_lowercase() || b[j].is_ascii_digit() || b[j] == b'-') {
            j += 1;
        }
        let mut end = j;
        while end > i + 1 && b[end - 1] == b'-' {
            end -= 1;
        }
        out.push_str(&s[i..end]);
        i = end.max(i + 1);
    }
    out
}

/// Clean a name for use in Kubernetes object names, as cass-operator's `CleanupForKubernetes`:
/// a valid DNS-1035 label is kept; otherwise it is lower-cased, '_' becomes '-', and only the
/// parts matching a DNS-1035 label are kept. `"My_Cluster"` → `"my-cluster"`.
pub fn cleanup_for_kubernetes(input: &str) -> String {
    if is_dns1035_label(input) {
        return input.to_string();
    }
    dns1035_matches(&input.to_lowercase().replace('_', "-"))
}

/// Clean a name into a DNS-1123 subdomain, as cass-operator's `CleanupSubdomain`.
pub fn cleanup_subdomain(input: &str) -> String {
    if is_dns1123_subdomain(input) {
        return input.to_string();
    }
    let s = input.to_lowercase().replace('_', "-");
    // Keep the runs matching `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`.
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let label_char = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    while i < b.len() {
        if !label_char(b[i]) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && (label_char(b[j]) || b[j] == b'-' || b[j] == b'.') {
            j += 1;
        }
        // Trim so the match ends on an alphanumeric and has no empty or dash-edged labels.
        let run = &s[i..j];
        let mut kept = String::new();
        for (n, label) in run.split('.').enumerate() {
            let l = label.trim_end_matches('-');
            if l.is_empty() || !label_char(l.as_bytes()[0]) {
                break;
            }
            if n > 0 {
                kept.push('.');
            }
            kept.push_str(l);
            if l.len() != label.len() {
                break;
            }
        }
        out.push_str(&kept);
        i = j;
    }
    out
}

/// Clean a value for use as a label value, as cass-operator's `CleanLabelValue`: spaces are
/// removed and only characters allowed in label values are kept (alphanumerics, '-', '_', '.',
/// starting and ending with an alphanumeric).
pub fn clean_label_value(value: &str) -> String {
    let s: String = value.chars().filter(|c| *c != ' ').collect();
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len() && allowed(chars[j]) {
            j += 1;
        }
        let mut end = j;
        while end > i && !chars[end - 1].is_ascii_alphanumeric() {
            end -= 1;
        }
        out.extend(&chars[i..end]);
        i = j.max(i + 1);
    }
    out
}

/// Name of the StatefulSet of a rack: `<cluster>-<dc>-<rack>-sts`, each part cleaned.
pub fn sts_name(cluster: &str, dc: &str, rack: &str) -> String {
    format!(
        "{}-{}-{}-sts",
        cleanup_for_kubernetes(cluster),
        cleanup_for_kubernetes(dc),
        cleanup_for_kubernetes(rack)
    )
}

/// Longest StatefulSet name the operator accepts: the pod names derived from it (plus the
/// controller-revision-hash label) must stay within Kubernetes limits.
pub const MAX_STS_NAME_LEN: usize = 60;

/// Name of the superuser Secret generated when none is given: `<cluster>-superuser`.
pub fn superuser_secret_name(cluster: &str) -> String {
    format!("{}-superuser", cleanup_for_kubernetes(cluster))
}

/// Name of the cluster-wide seed Service: `<cluster>-seed-service`.
pub fn seed_service_name(cluster: &str) -> String {
    format!("{}-seed-service", cleanup_for_kubernetes(cluster))
}

/// Name of the datacenter Service: `<cluster>-<dc>-service`.
pub fn datacenter_service_name(cluster: &str, dc: &str) -> String {
    format!(
        "{}-{}-service",
        cleanup_for_kubernetes(cluster),
        cleanup_for_kubernetes(dc)
    )
}

/// Name of the headless Service covering every pod: `<cluster>-<dc>-all-pods-service`.
pub fn all_pods_service_name(cluster: &str, dc: &str) -> String {
    format!(
        "{}-{}-all-pods-service",
        cleanup_for_kubernetes(cluster),
        cleanup_for_kubernetes(dc)
    )
}

/// Name of the Service of the seeds outside the datacenter:
/// `<cluster>-<dc>-additional-seed-service`.
pub fn additional_seed_service_name(cluster: &str, dc: &str) -> String {
    format!(
        "{}-{}-additional-seed-service",
        cleanup_for_kubernetes(cluster),
        cleanup_for_kubernetes(dc)
    )
}

/// Name of the NodePort Service: `<cluster>-<dc>-node-port-service`.
pub fn node_port_service_name(cluster: &str, dc: &str) -> String {
    format!(
        "{}-{}-node-port-service",
        cleanup_for_kubernetes(cluster),
        cleanup_for_kubernetes(dc)
    )
}

/// Name of the PodDisruptionBudget of a datacenter: `<dc>-pdb`.
pub fn pdb_name(dc: &str) -> String {
    format!("{}-pdb", cleanup_for_kubernetes(dc))
}

/// Split `nodes` over `racks` as evenly as possible, the first racks taking the remainder
/// (cass-operator's `SplitRacks`). `split_racks(5, 3) == [2, 2, 1]`.
pub fn split_racks(nodes: usize, racks: usize) -> Vec<usize> {
    if racks == 0 {
        return Vec::new();
    }
    let (per, extra) = (nodes / racks, nodes % racks);
    (0..racks).map(|i| per + usize::from(i < extra)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_matches_upstream_examples() {
        assert_eq!(cleanup_for_kubernetes("dc1"), "dc1");
        assert_eq!(cleanup_for_kubernetes("My_Cluster"), "my-cluster");
        assert_eq!(cleanup_for_kubernetes("Test Cluster"), "testcluster");
        assert_eq!(cleanup_for_kubernetes("1cluster"), "cluster");
        assert_eq!(cleanup_for_kubernetes("a.b"), "ab");
        assert_eq!(cleanup_subdomain("Foo_Bar.baz"), "foo-bar.baz");
        assert_eq!(cleanup_subdomain("ok.name"), "ok.name");
        assert_eq!(clean_label_value("Test Cluster"), "TestCluster");
        assert_eq!(clean_label_value("-a_b."), "a_b");
    }

    #[test]
    fn derived_names() {
        assert_eq!(
            sts_name("Test_Cluster", "dc1", "r1"),
            "test-cluster-dc1-r1-sts"
        );
        assert_eq!(superuser_secret_name("demo"), "demo-superuser");
        assert_eq!(datacenter_service_name("demo", "dc1"), "demo-dc1-service");
        assert_eq!(split_racks(5, 3), vec![2, 2, 1]);
        assert_eq!(split_racks(3, 0), Vec::<usize>::new());
    }

    #[test]
    fn dns_checks() {
        assert!(is_dns1035_label("dc-1"));
        assert!(!is_dns1035_label("1dc"));
        assert!(!is_dns1035_label("dc_1"));
        assert!(!is_dns1035_label("dc-"));
        assert!(!is_dns1035_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
    }
}
