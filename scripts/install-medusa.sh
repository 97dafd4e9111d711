#!/usr/bin/env bash
# Installs the real Medusa gRPC server (PyPI cassandra-medusa, plus grpcio and
# grpcio-health-checking, which upstream keeps in a Poetry group rather than in the
# package's dependencies) into a virtualenv in a cache outside the repository, keyed by
# version, and prints the venv's python path (last line). Quick when already cached.
set -euo pipefail
version="${MEDUSA_VERSION:-0.31.0}"
cache="${K8SSANDRA_MEDUSA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8ssandra-rs/medusa}"
venv="$cache/$version"
python="$venv/bin/python"
stamp="$venv/.installed"
# Tests started together may all run this: one installs, the others wait for it.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [[ ! -f "$stamp" ]]; then
  # Medusa 0.31 declares requires-python >=3.10,<3.13.
  base="${MEDUSA_BASE_PYTHON:-}"
  if [[ -z "$base" ]]; then
    for candidate in python3.12 python3.11 python3.10 python3; do
      if command -v "$candidate" >/dev/null &&
        "$candidate" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] < (3, 13) else 1)' 2>/dev/null; then
        base="$(command -v "$candidate")"
        break
      fi
    done
  fi
  if [[ -z "$base" ]]; then
    echo "install-medusa: need Python 3.10-3.12 (cassandra-medusa $version requires it); set MEDUSA_BASE_PYTHON" >&2
    exit 1
  fi
  rm -rf "$venv"
  "$base" -m venv "$venv"
  "$python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$python" -m pip install --quiet --disable-pip-version-check \
    "cassandra-medusa==$version" grpcio grpcio-health-checking >&2
  "$python" -c 'import medusa.service.grpc.server' >&2
  touch "$stamp"
fi
echo "$python"
