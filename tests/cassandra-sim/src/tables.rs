//! `POST /api/v0/ops/tables/create` request checks: what Cassandra refuses in a CREATE TABLE
//! (no partition key, a column named twice, an unknown column kind) is refused here too.

use std::collections::BTreeSet;

use serde_json::Value;

const KINDS: [&str; 4] = ["PARTITION_KEY", "CLUSTERING_COLUMN", "REGULAR", "STATIC"];

/// `(keyspace, table)` of a valid request, or the reason it is refused.
pub(crate) fn check_create_table(body: &Value) -> Result<(String, String), String> {
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (Some(keyspace), Some(table)) = (text("keyspace_name"), text("table_name")) else {
        return Err(
            "Table creation failed: 'keyspace_name' and 'table_name' must be provided".into(),
        );
    };
    let columns = body
        .get("columns")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or("Table creation failed: 'columns' must be provided")?;
    let mut names = BTreeSet::new();
    let mut partition_keys = 0;
    for c in columns {
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
        let ty = c.get("type").and_then(Value::as_str).unwrap_or_default();
        let kind = c.get("kind").and_then(Value::as_str).unwrap_or("REGULAR");
        if name.is_empty() || ty.is_empty() {
            return Err("Table creation failed: every column needs a name and a type".into());
        }
        if !KINDS.contains(&kind) {
            return Err(format!("Table creation failed: unknown column kind {kind}"));
        }
        if !names.insert(name) {
            return Err(format!("Multiple definition of identifier {name}"));
        }
        if kind == "PARTITION_KEY" {
            partition_keys += 1;
        }
    }
    if partition_keys == 0 {
        return Err(format!(
            "No PRIMARY KEY specifed for table '{table}' (exactly one required)"
        ));
    }
    Ok((keyspace, table))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refuses_what_cassandra_refuses() {
        let ok = json!({"keyspace_name": "ks", "table_name": "t", "columns": [
            {"name": "k", "type": "uuid", "kind": "PARTITION_KEY", "position": 0},
            {"name": "v", "type": "text", "kind": "REGULAR"}]});
        assert_eq!(check_create_table(&ok), Ok(("ks".into(), "t".into())));
        let no_pk = json!({"keyspace_name": "ks", "table_name": "t",
            "columns": [{"name": "v", "type": "text", "kind": "REGULAR"}]});
        assert!(
            check_create_table(&no_pk)
                .unwrap_err()
                .contains("PRIMARY KEY")
        );
        let twice = json!({"keyspace_name": "ks", "table_name": "t", "columns": [
            {"name": "k", "type": "uuid", "kind": "PARTITION_KEY"},
            {"name": "k", "type": "text"}]});
        assert!(check_create_table(&twice).unwrap_err().contains("Multiple"));
        assert!(check_create_table(&json!({"table_name": "t"})).is_err());
        assert!(check_create_table(&json!({"keyspace_name": "ks", "table_name": "t"})).is_err());
    }
}
