#!/usr/bin/env bash
# Builds the control-plane binaries testenv runs (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd, kwok, helm) from the pinned Go wrapper modules beside this
# script. The output lives outside the repository, in a directory keyed by a hash of the
# wrapper modules and the Go version, so a warm machine skips the build entirely.
# Prints the bin directory on stdout (last line).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${K8SSANDRA_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8ssandra-rs/testenv}"
key="$( (go version; cat "$here"/go/*/go.mod "$here"/go/*/go.sum "$here"/go/kubernetes/tools.go "$0") | sha256sum | cut -c1-16)"
out="$cache_root/$key"
bin="$out/bin"

if [[ -f "$out/.complete" ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false -trimpath"
export CGO_ENABLED=0
start=$(date +%s)

# Go's build and module caches grow to ~6 GB for these modules and serve nothing once the
# binaries exist; a CI disk ran out because of them. They live beside the output and go away
# after the build, unless the caller chose its own.
scratch="$out/.go-scratch"
if [[ -z "${GOCACHE_KEEP:-}" ]]; then
  export GOCACHE="$scratch/build" GOMODCACHE="$scratch/mod"
  cleanup_go() { chmod -R u+w "$scratch" 2>/dev/null || true; rm -rf "$scratch"; }
  trap cleanup_go EXIT
fi

# Matches both `require k8s.io/kubernetes vX` and a line inside a `require (` block.
k8s_version="$(awk '$1=="k8s.io/kubernetes"{print $2} $1=="require" && $2=="k8s.io/kubernetes"{print $3}' "$here/go/kubernetes/go.mod")"
if [[ ! "$k8s_version" =~ ^v1\.[0-9]+\.[0-9]+$ ]]; then
  # An empty version makes every Kubernetes binary panic at start-up (metrics version parser).
  echo "cannot read the k8s.io/kubernetes version from go/kubernetes/go.mod (got '$k8s_version')" >&2
  exit 1
fi
minor="$(echo "$k8s_version" | cut -d. -f2)"
ver_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ver_flags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ver_flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build() { # module-dir output-name package
  local dir="$1" name="$2" pkg="$3" flags="${4:-}"
  if [[ -x "$bin/$name" ]]; then return; fi
  echo ">> building $name ($pkg)" >&2
  (cd "$here/go/$dir" && go build -ldflags "-s -w $flags" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
}

build etcd etcd go.etcd.io/etcd/server/v3
build kwok kwok sigs.k8s.io/kwok/cmd/kwok
build helm helm helm.sh/helm/v3/cmd/helm
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  build kubernetes "$cmd" "k8s.io/kubernetes/cmd/$cmd" "$ver_flags"
done

# A binary that cannot report its version would panic at start-up; fail here instead.
for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
  "$bin/$cmd" --version >&2
done
"$bin/kubectl" version --client >&2

end=$(date +%s)
echo "built in $((end - start))s into $bin ($(du -sh "$bin" | cut -f1))" >&2
touch "$out/.complete"
echo "$bin"
