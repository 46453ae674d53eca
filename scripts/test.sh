#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, and the integration
# tests, which start real Prosody servers from config/prosody.cfg.lua and
# real ejabberd servers from config/ejabberd.yml on loopback, in temp dirs
# (tests/api/servers.rs). Installs Prosody, ejabberd and Python from Debian
# if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
# Debian installs ejabberdctl in /usr/sbin, which not every PATH has.
export PATH="$PATH:/usr/sbin"
need prosody prosody
need ejabberdctl ejabberd
need python3 python3
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
# A short run of every fuzz target (docs/reliability.md has the long ones);
# the first build of the fuzz crate (nightly, sanitizers) takes a while.
if [ -z "${JIDGATE_SKIP_FUZZ:-}" ]; then
    scripts/fuzz.sh 20
fi
