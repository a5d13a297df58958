#!/usr/bin/env bash
# Runs the many-node simulator (`kith sim`) at the sizes BENCHMARKS.md
# records: 200 and 1,000 nodes, degree 8, small world, 20 ms links,
# 10 MB/s, seed 1; searches, tunnels, then a lobby of every node with
# 20 messages. Writes CSV, JSON and SVG charts under $OUT (default
# /tmp/kith-sim-out). Takes about 3 minutes on 2 cores (1,000 nodes:
# about 2 GiB of memory).
#
# Usage: scripts/sim.sh [extra kith sim flags]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
OUT="${OUT:-/tmp/kith-sim-out}"
bin="$(mktemp -d)/kith"
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/kith
for n in 200 1000; do
  echo "== kith sim --nodes $n --degree 8 --graph smallworld --latency 20ms --bandwidth 10MB/s --searches 100 --seed 1"
  /usr/bin/time -f "wall %es, max RSS %M KiB" \
    "$bin" sim --nodes "$n" --degree 8 --graph smallworld --latency 20ms --bandwidth 10MB/s \
      --searches 100 --seed 1 --out "$OUT/$n" "$@"
  echo
done
