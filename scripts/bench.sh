#!/usr/bin/env bash
# Runs every benchmark of kith and prints the figures BENCHMARKS.md records.
# Each figure is a ratio against a baseline measured in the same run, on the
# same machine. Everything runs on 127.0.0.1. Takes a few minutes.
#
# Usage: scripts/bench.sh [extra go test flags]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
echo "== machine"
echo "date:  $(date -u +%Y-%m-%dT%H:%MZ)"
echo "cpu:   $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
echo "mem:   $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "go:    $(go version | cut -d' ' -f3)"

echo
echo "== direct download vs raw libp2p stream (256 MiB, TCP loopback, same hosts)"
go test ./node/ -run '^$' -bench 'RawStream|DirectDownload' -benchtime 5x -count 3 "$@" | grep -E '^Benchmark'

echo
echo "== index hashing vs plain BLAKE3, one core (256 MiB file in the page cache)"
go test ./share/ -run '^$' -bench 'BenchmarkScan$|BenchmarkBLAKE3File$' -cpu 1 -count 3 "$@" | grep -E '^Benchmark'

echo
echo "== in-memory hashing and verification, one core"
go test ./share/ -run '^$' -bench 'IndexHash|BLAKE3Plain|VerifyGroup' -cpu 1 -count 3 "$@" | grep -E '^Benchmark'

echo
echo "== share protocol over a plain TCP socket vs raw TCP"
go test ./share/ -run '^$' -bench 'ServeRangeTCP|RawTCP' -count 3 "$@" | grep -E '^Benchmark'

echo
echo "== tunnel vs a spliced raw libp2p chain, 1-3 relays, and tunnel setup time"
go test ./tunnels/ -run '^$' -bench Chain -benchtime 3x -count 2 "$@" | grep -E '^Benchmark'

echo
echo "== tunnelled download through 1 and 3 relays"
go test ./node/ -run '^$' -bench TunnelDownload -benchtime 3x "$@" | grep -E '^Benchmark'

echo
echo "== memory per idle tunnel at a relay (1,000 tunnels, relay in its own process)"
go test ./tunnels/ -run '^$' -bench RelayIdleTunnels -benchtime 1x -count 2 "$@" | grep -E '^Benchmark'

echo
echo "== idle memory of kith up with 2 friends (VmRSS after 20 s)"
bash scripts/idle-memory.sh

echo
echo "== the many-node simulator at 200 and 1,000 nodes (BENCHMARKS.md, Simulator)"
bash scripts/sim.sh
