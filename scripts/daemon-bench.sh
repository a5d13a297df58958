#!/usr/bin/env bash
# daemon-bench.sh: `kith get` of a large file between two `kith up`
# daemons on 127.0.0.1 against a raw libp2p stream between two processes
# (kith-bench) over the same loopback, in one run (issue 14). Each figure
# is the median of RUNS runs, interleaved, after one of each that is not
# counted (run 0: the first writes of a fresh file cost the VM first
# touches of its pages, and the shared file is still being written back).
#
# Usage: scripts/daemon-bench.sh   (SIZE_MIB=1024 RUNS=5 by default)
#        KITH=path/to/kith scripts/daemon-bench.sh   measures that binary
#        PROFILE=DIR scripts/daemon-bench.sh   also writes 1 s CPU profiles
#        of both daemons, taken during the last run, to DIR/{ana,ben}.pprof
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-5}
bytes=$((SIZE_MIB << 20))
work=$(mktemp -d -t kith-dbench.XXXX)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
if [ -n "${KITH:-}" ]; then cp "$KITH" "$work/kith"; else go build -o "$work/kith" ./cmd/kith; fi
go build -o "$work/kith-bench" ./cmd/kith-bench
K=$work/kith
k() { local h=$1; shift; "$K" --home "$work/$h" "$@"; }
for h in ana ben; do
  k $h init --name $h >/dev/null
  "$K" up --home "$work/$h" --no-mdns --listen /ip4/127.0.0.1/tcp/0 --listen /ip4/127.0.0.1/udp/0/quic-v1 >"$work/$h.log" 2>&1 &
  pids+=($!)
done
for h in ana ben; do
  for _ in $(seq 100); do k $h status >/dev/null 2>&1 && break; sleep 0.1; done
done
k ana friend add "$(k ben id)" >/dev/null
k ben friend add "$(k ana id)" >/dev/null
for _ in $(seq 100); do k ana friend ls --json | grep -q '"online": true' && break; sleep 0.1; done
mkdir -p "$work/share"
head -c "$bytes" /dev/urandom >"$work/share/big.bin"
k ben share add "$work/share" --browsable >/dev/null
link=$(k ben share ls --links | grep -o 'kith://[^ ]*' | head -1)

"$work/kith-bench" serve --listen /ip4/127.0.0.1/tcp/0 --addr-file "$work/raw.addrs" >/dev/null &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/raw.addrs" ] && break; sleep 0.1; done
raw_addr=$(head -1 "$work/raw.addrs")

echo "== kith get of $SIZE_MIB MiB between two daemons vs a raw libp2p stream between two processes (TCP, 127.0.0.1)"
echo "   $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc), $(go version | cut -d' ' -f3), $(date -u +%Y-%m-%dT%H:%MZ)"
raws=(); gets=()
for i in $(seq 0 "$RUNS"); do
  r=$("$work/kith-bench" send --to "$raw_addr" --bytes "$bytes" | sed 's/.*: \([0-9.]*\) MiB\/s/\1/')
  [ "$i" = 0 ] || raws+=("$r")
  rm -rf "$work/got"; mkdir -p "$work/got"
  profilers=()
  if [ -n "${PROFILE:-}" ] && [ "$i" = "$RUNS" ]; then
    mkdir -p "$PROFILE"
    for h in ana ben; do
      (sleep 0.3; curl -s --unix-socket "$work/$h/api.sock" -o "$PROFILE/$h.pprof" "http://kith/debug/pprof/profile?seconds=1") &
      profilers+=($!)
    done
  fi
  t0=$(date +%s.%N)
  k ana get "$link" --to "$work/got" --again >/dev/null 2>&1
  t1=$(date +%s.%N)
  for p in "${profilers[@]:-}"; do [ -n "$p" ] && wait "$p"; done
  g=$(echo "scale=1; $bytes / 1048576 / ($t1 - $t0)" | bc -l)
  [ "$i" = 0 ] || gets+=("$g")
  k ana downloads cancel "$(basename "$link" | cut -d'?' -f1)" >/dev/null 2>&1 || true
  echo "run $i: raw $r MiB/s, kith get $g MiB/s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mr=$(median "${raws[@]}"); mg=$(median "${gets[@]}")
# ana's open connections by transport, from its metrics, and the friends
# it or ben moved from QUIC to TCP (f2f/tcpupgrade.go).
conns=$(curl -s --unix-socket "$work/ana/api.sock" http://kith/metrics | awk '
  /^libp2p_swarm_connections_(opened|closed)_total/ {
    match($0, /transport="[^"]*"/); t = substr($0, RSTART + 11, RLENGTH - 12)
    n[t] += ($0 ~ /opened/ ? $NF : -$NF) }
  END { for (t in n) printf "%s %d ", t, n[t] }')
echo "ana's connections: $conns; moved to TCP: $(cat "$work"/ana.log "$work"/ben.log | grep -c 'friend moved to TCP' || true)"
echo "median: raw $mr MiB/s, kith get $mg MiB/s, ratio $(echo "scale=2; $mg / $mr" | bc -l)"
