#!/usr/bin/env bash
# The project's test command (README "Run the tests"). Installs what it needs on a fresh
# machine: the pinned Rust toolchain with its wasm32-wasip2 target, the control-plane
# binaries built from Go modules (cached outside the repository, keyed by version), every
# policy compiled to a WebAssembly component. Then lint and the whole test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "Rust toolchain and wasm32-wasip2 target"
if ! command -v rustup >/dev/null; then
  echo "rustup is required (https://rustup.rs)" >&2
  exit 1
fi
toolchain="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)"
rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy --target wasm32-wasip2 >/dev/null
rustup target add --toolchain "$toolchain" wasm32-wasip2 >/dev/null

step "Control-plane binaries (kube-apiserver, etcd, kwok, helm, ...)"
TESTENV_BIN_DIR="$(tests/testenv/build-binaries.sh | tail -n 1)"
export TESTENV_BIN_DIR
echo "binaries in $TESTENV_BIN_DIR" >&2

step "cargo-component (the other way users build policies; a test builds with it)"
./scripts/install-cargo-component.sh

step "C compiler for wasm32-wasip2 (VRL's zstd/oniguruma), promtool (Debian), the real Medusa server (PyPI)"
./scripts/install-wasm-cc.sh
PROMTOOL="$(./scripts/install-promtool.sh | tail -n 1)"; export PROMTOOL
MEDUSA_PYTHON="$(./scripts/install-medusa.sh | tail -n 1)"; export MEDUSA_PYTHON

# A clean clone builds once: incremental state would only fill the disk (it did, on CI).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step "Policies as WebAssembly components"
policies=()
for manifest in plugins/*/Cargo.toml plugins/examples/*/Cargo.toml; do
  [[ "$manifest" == plugins/sdk/* ]] && continue
  if grep -q 'cdylib' "$manifest"; then
    policies+=(-p "$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -n 1)")
  fi
done
cargo build --target wasm32-wasip2 --profile wasm "${policies[@]}"

step "Formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "Tests"
# Tests that need testenv or a policy component fail when it is missing; CI=true makes
# the few optional checks mandatory too.
export CI="${CI:-true}"
cargo test --workspace --no-fail-fast "$@"
