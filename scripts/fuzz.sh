#!/usr/bin/env bash
# The fuzz targets (fuzz/, docs/reliability.md), one after the other, each
# from its seed corpus (fuzz/seeds/TARGET, kept in the repo) into a scratch
# corpus, single job, at low priority.
#
#   scripts/fuzz.sh                 30 s per target (what scripts/test.sh runs)
#   scripts/fuzz.sh 20              20 s per target
#   scripts/fuzz.sh 0 10000000      10 million executions per target
#   FUZZ_TARGETS="stanza" scripts/fuzz.sh 60
#   FUZZ_SANITIZER=none ...         without AddressSanitizer (several times
#                                   faster; for long runs of safe code)
#
# Needs a nightly toolchain (rustup toolchain install nightly); installs
# cargo-fuzz if it is missing. A crash stops the script and leaves the input
# in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
runs=${2:-}
targets=${FUZZ_TARGETS:-params signature token_line stanza message facade_frame}
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzzing needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked --version 0.13.2
fi
san=()
if [ -n "${FUZZ_SANITIZER:-}" ]; then san=(-s "$FUZZ_SANITIZER"); fi
(cd fuzz && nice -n 10 cargo +nightly fuzz build -O "${san[@]}")
for t in $targets; do
    corpus=$(mktemp -d)
    if [ -n "$runs" ]; then limit="-runs=$runs"; else limit="-max_total_time=$secs"; fi
    log=$(mktemp)
    (cd fuzz && nice -n 10 cargo +nightly fuzz run -O "${san[@]}" "$t" "$corpus" "seeds/$t" -- \
        "$limit" -print_final_stats=1) >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
    runs_done=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz $t: $runs_done executions, $rate exec/s, 0 crashes"
    rm -rf "$corpus" "$log"
done
