#!/usr/bin/env bash
# Load benchmark: headless-dns vs Knot DNS vs NSD vs a bare UDP reflector, on loopback.
#   bash bench/run.sh                      # 10k pods, 3 interleaved rounds of 10 s
#   bash bench/run.sh --pods 100000 --rounds 5 --json /tmp/results.json
# Options are bench/bench.py's (--help). Needs root for apt-get on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for pair in knotd:knot nsd:nsd dnsperf:dnsperf dig:dnsutils taskset:util-linux cc:gcc; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
cargo build --release --quiet
exec python3 bench/bench.py "$@"
