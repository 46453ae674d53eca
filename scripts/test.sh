#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, and the integration
# tests, which start real Prosody servers from config/prosody.cfg.lua on
# loopback. Installs Prosody and Python from Debian if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need prosody prosody
need python3 python3
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
