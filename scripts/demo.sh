#!/usr/bin/env bash
# The one-command demo (README "Try it"): two local Kubernetes clusters, the Cassandra
# simulator, the operator (control plane on cluster-0, data plane on cluster-1) with the
# built-in policies, and examples/k8ssandra-cluster.yaml — then a live view until both
# datacenters are Ready. Stays up afterwards; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"
state="${DEMO_STATE_DIR:-${TMPDIR:-/tmp}/k8ssandra-demo}"
mkdir -p "$state"
ns=k8ssandra-operator
pids=()

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
cleanup() {
  trap - EXIT INT TERM
  say "stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -n "${testenv_bin:-}" ]] && "$testenv_bin" down --state-dir "$state/testenv" >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  say "stopped; logs were in $state"
}
trap cleanup EXIT INT TERM

say "building (first run: the Kubernetes binaries take ~10 minutes, Rust ~10 more)"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
bin_dir="$(tests/testenv/build-binaries.sh | tail -n 1)"
export TESTENV_BIN_DIR="$bin_dir" PATH="$bin_dir:$PATH"
cargo build -q -p k8ssandra-host -p k8ssandra-testenv -p cassandra-sim
cargo build -q --target wasm32-wasip2 --profile wasm -p cassandra-datacenter -p k8ssandra-cluster -p k8ssandra-task -p cassandra-task -p stargate -p reaper -p repair-schedule -p repair-run -p medusa-backup-job -p medusa-task -p medusa-restore-job -p medusa-backup-schedule -p medusa-configuration -p scheduled-task
target="${CARGO_TARGET_DIR:-$root/target}"
testenv_bin="$target/debug/testenv"
mkdir -p "$state/plugins"
cp "$target/wasm32-wasip2/wasm/cassandra_datacenter.wasm" "$target/wasm32-wasip2/wasm/k8ssandra_cluster.wasm" \
  "$target/wasm32-wasip2/wasm/k8ssandra_task.wasm" "$target/wasm32-wasip2/wasm/cassandra_task.wasm" \
  "$target/wasm32-wasip2/wasm/stargate.wasm" "$target/wasm32-wasip2/wasm/reaper.wasm" \
  "$target/wasm32-wasip2/wasm/medusa_backup_job.wasm" "$target/wasm32-wasip2/wasm/medusa_task.wasm" \
  "$target/wasm32-wasip2/wasm/medusa_backup_schedule.wasm" "$target/wasm32-wasip2/wasm/scheduled_task.wasm" \
  "$target/wasm32-wasip2/wasm/medusa_configuration.wasm" "$target/wasm32-wasip2/wasm/medusa_restore_job.wasm" \
  "$target/wasm32-wasip2/wasm/repair_schedule.wasm" "$target/wasm32-wasip2/wasm/repair_run.wasm" "$state/plugins/"

say "starting 2 local Kubernetes clusters"
kubeconfig="$state/kubeconfig"
"$testenv_bin" down --state-dir "$state/testenv" >/dev/null 2>&1 || true
"$testenv_bin" up --clusters 2 --state-dir "$state/testenv" --kubeconfig "$kubeconfig" >"$state/testenv.log" 2>&1 &
pids+=($!)
until grep -q '^ready' "$state/testenv.log" 2>/dev/null; do
  kill -0 "${pids[-1]}" 2>/dev/null || { cat "$state/testenv.log" >&2; exit 1; }
  sleep 1
done
export KUBECONFIG="$kubeconfig"
k0() { kubectl --context cluster-0 "$@"; }
k1() { kubectl --context cluster-1 "$@"; }

say "installing the CRDs in both clusters"
"$target/debug/k8ssandra-operator" crds >"$state/crds.yaml"
for k in k0 k1; do
  $k apply --server-side -f "$state/crds.yaml" >/dev/null
  $k create namespace "$ns" --dry-run=client -o yaml | $k apply -f - >/dev/null
  # Medusa's storage credentials (the simulator's Medusa keeps backups in memory).
  $k -n "$ns" create secret generic medusa-bucket-key \
    --from-literal=credentials=$'[default]\naws_access_key_id = demo\naws_secret_access_key = demo' \
    --dry-run=client -o yaml | $k apply -f - >/dev/null
done

say "starting the Cassandra simulator"
"$target/debug/cassandra-sim" --kubeconfig "$kubeconfig" --bootstrap-delay 1s >"$state/sim.out" 2>"$state/sim.log" &
pids+=($!)

say "registering cluster-1 with the control plane (ClientConfig)"
kubectl config view --raw --minify --context cluster-1 >"$state/cluster-1.kubeconfig"
k0 -n "$ns" create secret generic cluster-1-kubeconfig --from-file=kubeconfig="$state/cluster-1.kubeconfig" \
  --dry-run=client -o yaml | k0 apply -f - >/dev/null
cat <<YAML | k0 apply -f - >/dev/null
apiVersion: config.k8ssandra.io/v1beta1
kind: ClientConfig
metadata:
  name: cluster-1
  namespace: $ns
spec:
  contextName: cluster-1
  kubeConfigSecret:
    name: cluster-1-kubeconfig
YAML

say "starting the operator: control plane on cluster-0, data plane on cluster-1"
"$target/debug/k8ssandra-operator" run --context cluster-0 --plugin-dir "$state/plugins" \
  --cache-dir "$state/cache" --metrics-addr 127.0.0.1:18080 >"$state/operator-0.log" 2>&1 &
pids+=($!)
"$target/debug/k8ssandra-operator" run --context cluster-1 --plugin-dir "$state/plugins" \
  --cache-dir "$state/cache" --metrics-addr 127.0.0.1:18081 --control-plane=false >"$state/operator-1.log" 2>&1 &
pids+=($!)

say "applying examples/k8ssandra-cluster.yaml"
k0 apply -f examples/k8ssandra-cluster.yaml >/dev/null

dc_ready() { # context dc
  kubectl --context "$1" -n "$ns" get cassdc "$2" \
    -o jsonpath='{.status.cassandraOperatorProgress}{" "}{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null
}
start=$(date +%s)
while true; do
  view="$(
    echo "K8ssandraCluster demo — $(( $(date +%s) - start ))s   (logs: $state)"
    echo
    k0 -n "$ns" get k8c 2>&1 | sed 's/^/  /'
    for ctx in cluster-0 cluster-1; do
      echo
      echo "[$ctx]"
      kubectl --context "$ctx" -n "$ns" get cassdc,stargates,reapers,statefulsets,deployments,pods -o wide 2>&1 \
        | { grep -v '^Warning: Stargate support is deprecated' || true; } | sed 's/^/  /'
    done
  )"
  clear 2>/dev/null || true
  echo "$view"
  if [[ "$(dc_ready cluster-0 dc1)" == "Ready True" && "$(dc_ready cluster-1 dc2)" == "Ready True" ]]; then
    break
  fi
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { say "a component stopped; see $state/*.log"; exit 1; }
  done
  sleep 2
done

say "both datacenters are Ready after $(( $(date +%s) - start ))s; backing them up"
k0 apply -f examples/medusa-backups.yaml >/dev/null
sed 's/demo-dc1-first/demo-dc2-first/; s/cassandraDatacenter: dc1/cassandraDatacenter: dc2/' \
  examples/medusa-backups.yaml | k1 apply -f - >/dev/null
for i in $(seq 1 60); do
  b0="$(k0 -n "$ns" get medusabackup demo-dc1-first -o jsonpath='{.status.status}' 2>/dev/null || true)"
  b1="$(k1 -n "$ns" get medusabackup demo-dc2-first -o jsonpath='{.status.status}' 2>/dev/null || true)"
  [[ "$b0" == SUCCESS && "$b1" == SUCCESS ]] && break
  sleep 2
done
k0 -n "$ns" get medusabackupjobs,medusabackups 2>&1 | sed 's/^/  /'
k1 -n "$ns" get medusabackupjobs,medusabackups 2>&1 | sed 's/^/  /'

say "declaring a repair schedule (examples/repair-schedule.yaml) in the cluster's Reaper"
k0 apply -f examples/repair-schedule.yaml >/dev/null
for i in $(seq 1 90); do
  id="$(k0 -n "$ns" get repairschedule demo-system-auth -o jsonpath='{.status.scheduleId}' 2>/dev/null || true)"
  [[ -n "$id" ]] && break
  sleep 2
done
k0 -n "$ns" get reapers,repairschedules 2>&1 | sed 's/^/  /'
cat <<TXT

Try it:
  export KUBECONFIG=$kubeconfig
  kubectl --context cluster-0 -n $ns get k8c demo -o yaml
  kubectl --context cluster-1 -n $ns get cassdc dc2 -o yaml
  kubectl --context cluster-0 -n $ns get medusabackups -o yaml
  kubectl --context cluster-0 -n $ns get repairschedules -o yaml
  kubectl --context cluster-0 -n $ns patch k8c demo --type json \\
    -p '[{"op":"replace","path":"/spec/cassandra/datacenters/0/size","value":6}]'
  curl -s http://127.0.0.1:18080/metrics | grep k8ssandra_

Simulator control API: $(head -n 1 "$state/sim.out")
Press Ctrl-C to stop everything.
TXT
wait
