#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, and the integration
# tests, which start real Prosody servers from config/prosody.cfg.lua and
# real ejabberd servers from config/ejabberd.yml on loopback, in temp dirs
# (tests/api/servers.rs), and drive the console in headless Chromium
# (tests/api/browser.rs). Installs Prosody, ejabberd, PostgreSQL, Python,
# Chromium and chromedriver from Debian if they are missing.
#
# The store tests (tests/store) run on SQLite and PostgreSQL every time; the
# integration suite runs on SQLite, then again on PostgreSQL
# (JIDGATE_TEST_DATABASE=postgres). The tests start their own PostgreSQL
# server (tests/support/postgres.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
# Debian installs ejabberdctl in /usr/sbin, which not every PATH has.
export PATH="$PATH:/usr/sbin"
need prosody prosody
need ejabberdctl ejabberd
need python3 python3
# Debian keeps initdb and postgres in /usr/lib/postgresql/<version>/bin,
# outside PATH; the package's pg_lsclusters is in PATH.
need pg_lsclusters postgresql
# The facade's Python example client (docs/examples/facade_client.py).
python3 -c "import websockets.asyncio.client" 2>/dev/null \
    || python3 -m pip install --quiet "websockets==17.4"
need chromedriver chromium chromium-driver
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
JIDGATE_TEST_DATABASE=postgres cargo test --locked --test api
# A short run of every fuzz target (docs/reliability.md has the long ones);
# the first build of the fuzz crate (nightly, sanitizers) takes a while.
if [ -z "${JIDGATE_SKIP_FUZZ:-}" ]; then
    scripts/fuzz.sh 20
fi
