#!/usr/bin/env bash
# Resident memory per endpoint: RSS of headless-dns serving the generated dataset minus the
# RSS of the same binary serving one empty Service, divided by the endpoints loaded.
#   bash bench/memory.sh 10000 100000 1000000
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
out=bench/out
mkdir -p "$out/empty"
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIP: None}\n' > "$out/empty/x.yaml"

rss_kib() { # manifests folder -> VmRSS in KiB once serving
    local log; log=$(mktemp)
    ./target/release/headless-dns --manifests "$1" --listen 127.0.0.1:0 --threads 1 --log info 2>"$log" &
    local pid=$!
    for _ in $(seq 1 3000); do grep -q "serving DNS" "$log" && break; sleep 0.1; done
    sleep 1
    awk '/VmRSS/ {print $2}' "/proc/$pid/status"
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -f "$log"
}

base=$(rss_kib "$out/empty")
echo "empty process: ${base} KiB"
for pods in "${@:-10000 100000}"; do
    data="$out/data-$pods"
    [[ -f "$data/expected.json" ]] || python3 bench/gen_dataset.py --pods "$pods" --out "$data" >/dev/null
    endpoints=$(grep -c 'hostname:' -r "$data/manifests" | awk -F: '{s+=$2} END {print s}')
    rss=$(rss_kib "$data/manifests")
    echo "$endpoints endpoints: ${rss} KiB resident, $(( (rss - base) * 1024 / endpoints )) bytes per endpoint above the empty process"
done
