# syntax=docker/dockerfile:1
# The operator host plus its built-in policies.
#   docker build -t k8ssandra-operator .
# Runtime: distroless (glibc, no shell), non-root, policies in /plugins/builtin.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
RUN rustup target add wasm32-wasip2
COPY . .
RUN cargo build --release --locked -p k8ssandra-host \
 && cargo build --locked --target wasm32-wasip2 --profile wasm \
      -p cassandra-datacenter -p k8ssandra-cluster -p k8ssandra-task -p cassandra-task -p stargate -p reaper -p repair-schedule -p repair-run -p medusa-backup-job -p medusa-task -p medusa-restore-job -p medusa-backup-schedule -p medusa-configuration -p scheduled-task \
 && mkdir -p /out/plugins \
 && cp target/release/k8ssandra-operator /out/ \
 && cp target/wasm32-wasip2/wasm/cassandra_datacenter.wasm /out/plugins/cassandra-datacenter.wasm \
 && cp target/wasm32-wasip2/wasm/k8ssandra_cluster.wasm /out/plugins/k8ssandra-cluster.wasm \
 && cp target/wasm32-wasip2/wasm/k8ssandra_task.wasm /out/plugins/k8ssandra-task.wasm \
 && cp target/wasm32-wasip2/wasm/cassandra_task.wasm /out/plugins/cassandra-task.wasm \
 && cp target/wasm32-wasip2/wasm/stargate.wasm /out/plugins/stargate.wasm \
 && cp target/wasm32-wasip2/wasm/reaper.wasm /out/plugins/reaper.wasm \
 && cp target/wasm32-wasip2/wasm/repair_schedule.wasm /out/plugins/repair-schedule.wasm \
 && cp target/wasm32-wasip2/wasm/repair_run.wasm /out/plugins/repair-run.wasm \
 && cp target/wasm32-wasip2/wasm/medusa_backup_job.wasm /out/plugins/medusa-backup-job.wasm \
 && cp target/wasm32-wasip2/wasm/medusa_task.wasm /out/plugins/medusa-task.wasm \
 && cp target/wasm32-wasip2/wasm/medusa_restore_job.wasm /out/plugins/medusa-restore-job.wasm \
 && cp target/wasm32-wasip2/wasm/medusa_backup_schedule.wasm /out/plugins/medusa-backup-schedule.wasm \
 && cp target/wasm32-wasip2/wasm/medusa_configuration.wasm /out/plugins/medusa-configuration.wasm \
 && cp target/wasm32-wasip2/wasm/scheduled_task.wasm /out/plugins/scheduled-task.wasm
# The chart's init container copies built-in and custom policies into the one directory the
# operator loads; the runtime image has no shell or cp, so this is a tiny program of its own.
# Usage: install-policies <dest> <src>...  (copies every *.wasm of each src into dest)
COPY <<'RS' /tmp/install-policies.rs
use std::{env, fs, path::Path, process::exit};
fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some((dest, sources)) = args.split_first() else {
        eprintln!("usage: install-policies <dest> <src>...");
        exit(2);
    };
    for src in sources {
        let entries = match fs::read_dir(src) {
            Ok(e) => e,
            Err(e) => { eprintln!("{src}: {e}"); exit(1) }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".wasm") || !path.is_file() {
                continue;
            }
            let to = Path::new(dest).join(&name);
            if let Err(e) = fs::copy(&path, &to) {
                eprintln!("{} -> {}: {e}", path.display(), to.display());
                exit(1);
            }
            println!("{} -> {}", path.display(), to.display());
        }
    }
}
RS
RUN rustc -O --edition 2024 -o /out/install-policies /tmp/install-policies.rs

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/k8ssandra-operator /usr/local/bin/k8ssandra-operator
COPY --from=builder /out/install-policies /usr/local/bin/install-policies
COPY --from=builder /out/plugins/ /plugins/builtin/
USER 65532:65532
ENV K8SSANDRA_PLUGIN_DIR=/plugins/builtin \
    K8SSANDRA_CACHE_DIR=/var/cache/k8ssandra
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/k8ssandra-operator"]
CMD ["run"]
