#!/usr/bin/env bash
# Installs the C compiler for wasm32-wasip2 that policy dependencies with C code need
# (Debian's clang 14 with wasi-libc; .cargo/config.toml points the cc crate at it).
set -euo pipefail
pkgs=(clang-14 llvm-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages: ${missing[*]} (run as root or install them)" >&2
    exit 1
  fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
command -v clang-14 >/dev/null && test -f /usr/include/wasm32-wasi/stdio.h
echo "clang-14 with wasi-libc ready" >&2
