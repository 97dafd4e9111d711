#!/usr/bin/env bash
# Installs cargo-component (pinned), the optional builder of policy components
# (`cargo component build`). Policies also build with plain `cargo build --target
# wasm32-wasip2`; this tool is only needed for the `cargo component` workflow.
#
# Skipped when the pinned version is already on PATH. Override the version with
# CARGO_COMPONENT_VERSION.
set -euo pipefail

VERSION="${CARGO_COMPONENT_VERSION:-0.21.1}"

if command -v cargo-component >/dev/null 2>&1; then
    have="$(cargo-component --version 2>/dev/null | awk '{print $2}')"
    if [ "$have" = "$VERSION" ]; then
        echo "cargo-component $VERSION already installed"
        exit 0
    fi
    echo "cargo-component ${have:-unknown} found, installing $VERSION"
fi

rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo install cargo-component --version "$VERSION" --locked
cargo-component --version
