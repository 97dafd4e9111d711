//! The Vector configuration of a Cassandra pod: upstream's layout and defaults, unused
//! pipelines removed, and every check that keeps a broken file from shipping.

use k8ssandra_api::telemetry::{
    CassandraAgentSpec, McacTelemetrySpec, RelabelConfig, TelemetrySpec, VectorComponentsSpec,
    VectorSinkSpec, VectorSourceSpec, VectorSpec, VectorTransformSpec,
};
use k8ssandra_telemetry::cassandra::{self, TelemetryError};
use k8ssandra_telemetry::vector::{compile_vrl, duration_secs};

fn spec(components: VectorComponentsSpec) -> TelemetrySpec {
    TelemetrySpec {
        vector: Some(VectorSpec {
            enabled: Some(true),
            components: Some(components),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn sink(name: &str, type_: &str, inputs: &[&str], config: &str) -> VectorSinkSpec {
    VectorSinkSpec {
        name: name.into(),
        type_: type_.into(),
        inputs: Some(inputs.iter().map(|s| s.to_string()).collect()),
        config: Some(config.into()),
    }
}

fn transform(name: &str, type_: &str, inputs: &[&str], config: &str) -> VectorTransformSpec {
    VectorTransformSpec {
        name: name.into(),
        type_: type_.into(),
        inputs: Some(inputs.iter().map(|s| s.to_string()).collect()),
        config: Some(config.into()),
    }
}

fn remote_write() -> VectorSinkSpec {
    sink(
        "prom_rw",
        "prometheus_remote_write",
        &["enriched"],
        "endpoint = \"http://prometheus:9090/api/v1/write\"",
    )
}

fn errors(spec: &TelemetrySpec) -> Vec<TelemetryError> {
    cassandra::vector_toml(spec).expect_err("should be refused")
}

#[test]
fn defaults_only_print_the_system_log() {
    let text = cassandra::vector_toml(&spec(VectorComponentsSpec::default())).unwrap();
    assert!(text.contains("[sources.systemlog]"), "{text}");
    assert!(text.contains("[sinks.console_log]"), "{text}");
    // Nothing consumes the metrics source or the parsers: they are dropped.
    assert!(!text.contains("cassandra_metrics_raw"), "{text}");
    assert!(!text.contains("parse_cassandra_log"), "{text}");
    text.parse::<toml::Table>().unwrap();
}

#[test]
fn user_pipeline_keeps_the_metrics_chain_it_reads() {
    let s = spec(VectorComponentsSpec {
        transforms: Some(vec![transform(
            "enriched",
            "remap",
            &["cassandra_metrics"],
            "source = '''\n.tags.env = \"prod\"\n'''",
        )]),
        sinks: Some(vec![remote_write()]),
        ..Default::default()
    });
    let text = cassandra::vector_toml(&s).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    let raw = &doc["sources"]["cassandra_metrics_raw"];
    assert_eq!(raw["type"].as_str(), Some("prometheus_scrape"));
    assert_eq!(
        raw["endpoints"].as_array().unwrap()[0].as_str(),
        Some("http://localhost:9000/metrics")
    );
    assert_eq!(raw["scrape_interval_secs"].as_integer(), Some(30));
    assert_eq!(
        doc["transforms"]["cassandra_metrics"]["inputs"]
            .as_array()
            .unwrap()[0]
            .as_str(),
        Some("cassandra_metrics_raw")
    );
    assert_eq!(
        doc["sinks"]["prom_rw"]["type"].as_str(),
        Some("prometheus_remote_write")
    );
    // Order as upstream: sources, transforms, sinks.
    let (a, b, c) = (
        text.find("[sources.").unwrap(),
        text.find("[transforms.").unwrap(),
        text.find("[sinks.").unwrap(),
    );
    assert!(a < b && b < c, "{text}");
}

#[test]
fn scrape_interval_endpoint_and_tls_follow_the_spec() {
    let mut s = spec(VectorComponentsSpec {
        sinks: Some(vec![sink("out", "console", &["cassandra_metrics_raw"], "")]),
        ..Default::default()
    });
    s.vector.as_mut().unwrap().scrape_interval = Some("1m30s".into());
    s.cassandra = Some(CassandraAgentSpec {
        endpoint: Some(k8ssandra_api::telemetry::Endpoint {
            address: Some("127.0.0.1".into()),
            port: Some("9500".into()),
            tls: Some(k8ssandra_api::telemetry::TlsConfig {
                ca_file: Some("/certs/ca.crt".into()),
                ..Default::default()
            }),
        }),
        relabels: None,
    });
    let doc: toml::Table = cassandra::vector_toml(&s).unwrap().parse().unwrap();
    let raw = &doc["sources"]["cassandra_metrics_raw"];
    assert_eq!(
        raw["endpoints"].as_array().unwrap()[0].as_str(),
        Some("https://127.0.0.1:9500/metrics")
    );
    assert_eq!(raw["scrape_interval_secs"].as_integer(), Some(90));
    assert_eq!(raw["tls"]["ca_file"].as_str(), Some("/certs/ca.crt"));
}

#[test]
fn global_config_comes_first() {
    let mut s = spec(VectorComponentsSpec::default());
    s.vector.as_mut().unwrap().config =
        Some("data_dir = \"/var/lib/vector\"\n[api]\nenabled = false".into());
    let text = cassandra::vector_toml(&s).unwrap();
    assert!(
        text.starts_with("data_dir = \"/var/lib/vector\"\n[api]\nenabled = false\n"),
        "{text}"
    );
    text.parse::<toml::Table>().unwrap();
}

#[test]
fn vrl_error_names_the_transform() {
    let s = spec(VectorComponentsSpec {
        transforms: Some(vec![transform(
            "enriched",
            "remap",
            &["cassandra_metrics"],
            "source = '''\n.tags.env = upcase(\n'''",
        )]),
        sinks: Some(vec![remote_write()]),
        ..Default::default()
    });
    let e = errors(&s);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].field, "vector.components.transforms[0]");
    assert!(
        e[0].message.starts_with("transforms.enriched: VRL error"),
        "{}",
        e[0].message
    );
}

#[test]
fn vrl_unknown_function_is_an_error_and_stdlib_functions_compile() {
    assert!(compile_vrl(".a = no_such_function(.b)").is_err());
    compile_vrl(".a = parse_json!(.message)\n.b = get_env_var(\"X\") ?? \"\"\n.c = parse_groks!(\"x\", patterns: [\"%{LOGLEVEL:l}\"])").unwrap();
}

#[test]
fn unknown_sink_type_and_dangling_input_are_named() {
    let s = spec(VectorComponentsSpec {
        sinks: Some(vec![
            sink("a", "prometheus_remote_writer", &["cassandra_metrics"], ""),
            sink(
                "b",
                "console",
                &["nothing_here"],
                "encoding.codec = \"json\"",
            ),
        ]),
        ..Default::default()
    });
    let e = errors(&s);
    assert!(
        e.iter().any(|e| e.field == "vector.components.sinks[0]"
            && e.message
                .contains("unknown sink type `prometheus_remote_writer`")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|e| e.field == "vector.components.sinks[1]"
            && e.message
                .contains("input `nothing_here` names no source or transform")),
        "{e:?}"
    );
}

#[test]
fn bad_toml_duplicates_and_cycles_are_refused() {
    let s = spec(VectorComponentsSpec {
        sources: Some(vec![VectorSourceSpec {
            name: "mine".into(),
            type_: "file".into(),
            config: Some("include = [".into()),
        }]),
        transforms: Some(vec![
            transform("t1", "filter", &["t2"], "condition = \"true\""),
            transform("t2", "filter", &["t1"], "condition = \"true\""),
        ]),
        sinks: Some(vec![
            sink("s", "console", &["t1", "mine"], ""),
            sink("s", "console", &["t1"], ""),
        ]),
    });
    let e = errors(&s);
    let has = |field: &str, text: &str| {
        e.iter()
            .any(|e| e.field == field && e.message.contains(text))
    };
    assert!(
        has("vector.components.sources[0]", "config is not valid TOML"),
        "{e:?}"
    );
    assert!(has("vector.components.sinks[1]", "already used"), "{e:?}");
    assert!(e.iter().any(|e| e.message.contains("cycle")), "{e:?}");
}

#[test]
fn user_component_replaces_builtin_of_same_name() {
    let s = spec(VectorComponentsSpec {
        sinks: Some(vec![sink(
            "console_log",
            "console",
            &["systemlog"],
            "encoding.codec = \"json\"",
        )]),
        ..Default::default()
    });
    let text = cassandra::vector_toml(&s).unwrap();
    assert_eq!(text.matches("[sinks.console_log]").count(), 1, "{text}");
    assert!(text.contains("codec = \"json\""), "{text}");
}

#[test]
fn metric_filters_and_relabels_are_checked() {
    let s = TelemetrySpec {
        mcac: Some(McacTelemetrySpec {
            metric_filters: Some(vec![
                "deny:org.apache.cassandra.metrics.Table".into(),
                "allow org.apache".into(),
            ]),
            enabled: Some(true),
        }),
        cassandra: Some(CassandraAgentSpec {
            relabels: Some(vec![
                RelabelConfig {
                    source_labels: Some(vec!["__name__".into()]),
                    regex: Some("org_apache_cassandra_metrics_table_(.*".into()),
                    action: Some("drop".into()),
                    ..Default::default()
                },
                RelabelConfig {
                    action: Some("replace".into()),
                    ..Default::default()
                },
            ]),
            endpoint: None,
        }),
        ..Default::default()
    };
    let e = cassandra::check(&s);
    let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"mcac.metricFilters[1]"), "{e:?}");
    assert!(fields.contains(&"cassandra.relabels[0].regex"), "{e:?}");
    assert!(
        fields.contains(&"cassandra.relabels[1].targetLabel"),
        "{e:?}"
    );
    assert_eq!(e.len(), 3, "{e:?}");
}

#[test]
fn metrics_agent_config_appends_user_relabels_to_the_defaults() {
    let s = TelemetrySpec {
        cassandra: Some(CassandraAgentSpec {
            relabels: Some(vec![RelabelConfig {
                source_labels: Some(vec!["__name__".into()]),
                regex: Some("org_apache_cassandra_metrics_client_.*".into()),
                action: Some("drop".into()),
                ..Default::default()
            }]),
            endpoint: None,
        }),
        ..Default::default()
    };
    let doc = cassandra::metrics_agent_config(Some(&s));
    let relabels = doc["relabels"].as_array().unwrap();
    assert_eq!(relabels.len(), 14);
    assert_eq!(relabels[0]["targetLabel"], "should_drop");
    assert_eq!(relabels[12]["action"], "drop");
    assert_eq!(
        relabels[13]["regex"],
        "org_apache_cassandra_metrics_client_.*"
    );
    assert!(doc.get("endpoint").is_none());
}

#[test]
fn durations() {
    assert_eq!(duration_secs("30s"), Some(30));
    assert_eq!(duration_secs("1m"), Some(60));
    assert_eq!(duration_secs("1h2m3s"), Some(3723));
    assert_eq!(duration_secs("abc"), None);
    assert_eq!(duration_secs("10"), None);
}

#[test]
fn reaper_and_stargate_sidecars_scrape_their_endpoint() {
    use k8ssandra_telemetry::vector::sidecar_toml;
    let spec = VectorSpec {
        enabled: Some(true),
        ..Default::default()
    };
    let text = sidecar_toml(&spec, "stargate_metrics", "http://localhost:8084/metrics").unwrap();
    let doc: toml::Table = text.parse().unwrap();
    assert_eq!(doc["data_dir"].as_str(), Some("/var/lib/vector"));
    assert_eq!(doc["api"]["enabled"].as_bool(), Some(false));
    assert_eq!(
        doc["sources"]["stargate_metrics"]["endpoints"]
            .as_array()
            .unwrap()[0]
            .as_str(),
        Some("http://localhost:8084/metrics")
    );
    assert_eq!(
        doc["sinks"]["console_metrics"]["encoding"]["codec"].as_str(),
        Some("json")
    );

    // With a sink of the user's, no console sink; a bad input is still refused.
    let spec = VectorSpec {
        enabled: Some(true),
        components: Some(VectorComponentsSpec {
            sinks: Some(vec![sink(
                "rw",
                "prometheus_remote_write",
                &["reaper_metrics"],
                "endpoint = \"http://p\"",
            )]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let text = sidecar_toml(
        &spec,
        "reaper_metrics",
        "http://localhost:8081/prometheusMetrics",
    )
    .unwrap();
    assert!(!text.contains("console_metrics"), "{text}");
    let own = VectorSpec {
        enabled: Some(true),
        config: Some("[api]\nenabled = true\naddress = \"0.0.0.0:8686\"".into()),
        ..Default::default()
    };
    let doc: toml::Table = sidecar_toml(&own, "reaper_metrics", "http://x")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(doc["api"]["enabled"].as_bool(), Some(true));
    assert_eq!(doc["data_dir"].as_str(), Some("/var/lib/vector"));
    let bad = VectorSpec {
        enabled: Some(true),
        components: Some(VectorComponentsSpec {
            sinks: Some(vec![sink("rw", "console", &["nothing"], "")]),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(sidecar_toml(&bad, "reaper_metrics", "http://x").is_err());
}
