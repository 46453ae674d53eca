#!/usr/bin/env bash
# The token service benchmark (docs/benchmarks.md): jidgate against Redis,
# in the same run. Installs Redis from Debian if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
# scripts/bench.sh instances: one instance on SQLite, one on PostgreSQL
# and two on PostgreSQL (registrations/s, verifications/s), in one run.
if [ "${1:-}" = instances ]; then
    need prosody prosody
    need pg_lsclusters postgresql
    exec cargo bench --locked --bench instances
fi
need redis-server redis-server
need redis-benchmark redis-tools
cargo bench --locked --bench token_service
