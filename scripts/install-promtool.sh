#!/usr/bin/env bash
# Installs promtool from Debian's `prometheus` package and prints its path (last line).
# The package is downloaded and extracted into a cache outside the repository (no daemon
# is installed or started); an installed /usr/bin/promtool is used as it is.
set -euo pipefail
if command -v promtool >/dev/null; then
  command -v promtool
  exit 0
fi
cache="${K8SSANDRA_PROMTOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8ssandra-rs/prometheus}"
bin="$cache/root/usr/bin/promtool"
if [[ ! -x "$bin" ]]; then
  mkdir -p "$cache"
  work="$(mktemp -d "$cache/dl.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  if ! (cd "$work" && apt-get download prometheus >&2); then
    apt-get update -qq >&2
    (cd "$work" && apt-get download prometheus >&2)
  fi
  rm -rf "$cache/root"
  dpkg-deb -x "$work"/prometheus_*.deb "$cache/root"
fi
"$bin" --version >&2
echo "$bin"
