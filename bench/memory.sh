#!/usr/bin/env bash
# Resident memory per endpoint: RSS of headless-dns serving the generated dataset minus the
# RSS of the same binary serving one empty Service, divided by the endpoints loaded.
#   bash bench/memory.sh 10000 100000 1000000
# With --clusterset first: per remote endpoint too, the dataset served with a ServiceImport
# per Service and a second cluster's slices (as many endpoints again) under
# --clusterset-zone, minus the dataset alone, divided by the remote endpoints.
#   bash bench/memory.sh --clusterset 100000
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
out=bench/out
mkdir -p "$out/empty"
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIP: None}\n' > "$out/empty/x.yaml"

clusterset=
if [[ "${1:-}" == --clusterset ]]; then clusterset=1; shift; fi

rss_kib() { # manifests folder, extra flags -> VmRSS in KiB once serving
    local log; log=$(mktemp)
    local folder=$1; shift
    ./target/release/headless-dns --manifests "$folder" --listen 127.0.0.1:0 --threads 1 --log info "$@" 2>"$log" &
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
    if [[ -n "$clusterset" ]]; then
        [[ -f "$data/queries-clusterset-pod-a.txt" ]] || python3 bench/gen_dataset.py --pods "$pods" --out "$data" --clusterset >/dev/null
    else
        [[ -f "$data/expected.json" ]] || python3 bench/gen_dataset.py --pods "$pods" --out "$data" >/dev/null
    fi
    endpoints=$(grep -c 'hostname:' -r "$data/manifests" | awk -F: '{s+=$2} END {print s}')
    rss=$(rss_kib "$data/manifests")
    echo "$endpoints endpoints: ${rss} KiB resident, $(( (rss - base) * 1024 / endpoints )) bytes per endpoint above the empty process"
    if [[ -n "$clusterset" ]]; then
        remote=$(grep -c 'hostname:' -r "$data/manifests-clusterset" | awk -F: -v local="$endpoints" '{s+=$2} END {print s - local}')
        with=$(rss_kib "$data/manifests-clusterset" --clusterset-zone clusterset.local)
        echo "  + $remote remote endpoints in ServiceImports: ${with} KiB resident, $(( (with - rss) * 1024 / remote )) bytes per remote endpoint above the cluster alone"
    fi
done
