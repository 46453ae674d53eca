#!/usr/bin/env bash
# The token service benchmark (docs/benchmarks.md): jidgate against Redis,
# in the same run. Installs Redis from Debian if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need redis-server redis-server
need redis-benchmark redis-tools
cargo bench --locked --bench token_service
