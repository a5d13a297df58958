#!/usr/bin/env bash
# wan-bench.sh: kith over emulated wide-area links, against the raw libp2p
# stream over the same link, in one run (issue 14). Needs root (network
# namespaces) and the userspace link emulator wanem (this kernel has no
# netem): WANEM_SRC names its source (default ../shared/tools/wanem).
#
# For each profile it builds namespaces joined by wanem links, with
# public-looking addresses that exist only inside them (nothing links a
# namespace to the machine's network), and measures:
#   raw-tcp, raw-quic  a raw libp2p stream (kith-bench) over one link
#   direct             `kith get` between two `kith up` daemons over one link
#   anonymous          `kith get --anonymous` through 2 relays over three links
#   raw-chain          (with anonymous) a raw libp2p TCP stream across those
#                      three links, the kernel forwarding in the relays
# every daemon with the default `kith up` settings (its init port on every
# interface, TCP and QUIC).
#
# Usage: scripts/wan-bench.sh [PROFILE ...]
#   profiles: 50ms-500mbit, 100ms-100mbit-loss, 10ms-1gbit (default: all)
#   SIZE_MIB=N overrides the file size of every profile.
#   TCP_CC=NAME sets the namespaces' TCP congestion control (default: the
#   machine's, printed with the profile).
#   ROUNDS=N repeats the raw streams and the downloads N times in each
#   profile, interleaved (a file of its own per round), and ends with the
#   medians and kith's ratios to the better raw transport's median (the
#   emulated links' rate varies from run to run on this 2-core machine).
#   RAW_QUIC_FOR=D bounds the raw QUIC stream's time (default 60s),
#   RAW_CHAIN_FOR=D that of the raw stream across the chain (default 20s).
#   ONLY=PARTS runs only those of raw, direct, anonymous (comma-separated;
#   default all): ONLY=raw,direct, ONLY=anonymous.
#   KITH_UP_FLAGS="..." adds flags to every `kith up` (e.g. --log-level debug).
#   KITH_BIN=path measures that kith binary instead of one built here.
#   WAN_LOGS=DIR keeps the daemons' logs there (PROFILE-NAME.log).
#   WAN_SS=FILE writes the TCP sockets (ss -tmni) of the direct download's
#   two ends there, and of the anonymous chain's holder and relays in
#   FILE.anon, five times a second.
#   SETTLE=S is how long to wait after two friends are online before
#   going on (default 2): friends that met over QUIC alone are moved to
#   TCP within about 0.5 s (f2f/tcpupgrade.go), and a download started
#   during the move pays up to a second more; SETTLE=0 measures that.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
[ "$(id -u)" -eq 0 ] || { echo "wan-bench: needs root (network namespaces)" >&2; exit 1; }

WANEM_SRC=${WANEM_SRC:-../shared/tools/wanem}
SETTLE=${SETTLE:-2}
[ -d "$WANEM_SRC" ] || WANEM_SRC=../../shared/tools/wanem # from a worktree in wt/
work=$(mktemp -d -t kith-wan.XXXX)
bin=$work/bin
mkdir -p "$bin"
if [ -n "${KITH_BIN:-}" ]; then cp "$KITH_BIN" "$bin/kith"; else go build -o "$bin/kith" ./cmd/kith; fi
go build -o "$bin/kith-bench" ./cmd/kith-bench
go build -C "$WANEM_SRC" -o "$bin/wanem" .
export KITH=$bin/kith

prefix=kwb$$
nss=()
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "${nss[@]:-}"; do [ -n "$n" ] && ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# ns VAR NAME: makes namespace $prefix$NAME, sets VAR to its name and
# records it for the cleanup (not in a subshell: nss must see it).
# TCP_CC, if set, is the namespace's TCP congestion control (a sysctl of
# its own; new namespaces take the machine's, bbr here, cubic on most).
ns() {
  local n=$prefix$2
  ip netns add "$n"; ip -n "$n" link set lo up; nss+=("$n"); printf -v "$1" %s "$n"
  if [ -n "${TCP_CC:-}" ]; then ip netns exec "$n" sysctl -qw net.ipv4.tcp_congestion_control="$TCP_CC"; fi
}

# link NS1 IP1 NS2 IP2 DELAY RATE LOSS: a wanem link (point to point).
link() {
  local a=$1 ipa=$2 b=$3 ipb=$4 delay=$5 rate=$6 loss=$7 id=$RANDOM
  local log=$work/wanem.$id.log
  "$bin/wanem" -a wa$id -b wb$id -delay "$delay" -rate "$rate" -loss "$loss" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do grep -q ready "$log" && break; sleep 0.1; done
  grep -q ready "$log" || { cat "$log"; exit 1; }
  ip link set wa$id netns "$a"; ip link set wb$id netns "$b"
  ip -n "$a" addr add "$ipa" peer "$ipb" dev wa$id; ip -n "$a" link set wa$id mtu 1500 up
  ip -n "$b" addr add "$ipb" peer "$ipa" dev wb$id; ip -n "$b" link set wb$id mtu 1500 up
}

# isolated: no namespace of ours has a default route or a veth, so nothing
# reaches the machine's own network.
isolated() {
  for n in "${nss[@]}"; do
    if ip -n "$n" route show default | grep -q .; then echo "wan-bench: $n has a default route" >&2; exit 1; fi
    if ip -n "$n" -o link show type veth | grep -q .; then echo "wan-bench: $n has a veth" >&2; exit 1; fi
  done
}

# daemon NS NAME: init and start `kith up` with the default settings.
daemon() {
  local n=$1 name=$2 home=$work/$2
  ip netns exec "$n" "$KITH" init --name "$name" --home "$home" >/dev/null
  ip netns exec "$n" "$KITH" up --home "$home" ${KITH_UP_FLAGS:-} >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    ip netns exec "$n" "$KITH" status --home "$home" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "wan-bench: $name did not come up:" >&2; cat "$work/$name.log" >&2; exit 1
}

k() { local n=$1 name=$2; shift 2; ip netns exec "$n" "$KITH" --home "$work/$name" "$@"; }

# befriend NS1 NAME1 NS2 NAME2: both add each other's invite, then wait.
befriend() {
  local inv1 inv2
  inv1=$(k "$1" "$2" id); inv2=$(k "$3" "$4" id)
  k "$1" "$2" friend add "$inv2" >/dev/null
  k "$3" "$4" friend add "$inv1" >/dev/null
  for _ in $(seq 300); do
    if k "$1" "$2" friend ls --json | grep -q '"online": true'; then
      sleep "$SETTLE"
      return
    fi
    sleep 0.1
  done
  echo "wan-bench: $2 and $4 never connected" >&2; exit 1
}

# timed CMD...: runs CMD, prints the seconds it took.
timed() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$work/timed.out" 2>&1 || { echo "wan-bench: failed: $*" >&2; cat "$work/timed.out" >&2; return 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

# moves NAME...: how many friends the daemons moved from QUIC to TCP.
moves() { local n=0 d; for d in "$@"; do n=$((n + $(grep -c 'friend moved to TCP' "$work/$d.log" || true))); done; echo $n; }

# conns NAME: the daemon's open connections by transport, from its metrics.
conns() {
  curl -s --unix-socket "$work/$1/api.sock" http://kith/metrics | awk '
    /^libp2p_swarm_connections_(opened|closed)_total/ {
      match($0, /transport="[^"]*"/); t = substr($0, RSTART + 11, RLENGTH - 12)
      n[t] += ($0 ~ /opened/ ? $NF : -$NF) }
    END { for (t in n) printf "%s %d ", t, n[t] }'
}

# part NAME: whether ONLY asks for that part of a profile (all without ONLY).
part() { [ -z "${ONLY:-}" ] || [[ ",$ONLY," == *",$1,"* ]]; }

rate() { echo "scale=1; $1 / 1048576 / $2" | bc -l; }

# transfer NAME BYTES [N]: the rate of the transfer alone of the daemon's
# Nth download (default 1), from its log: from the file's size proven
# (sources found, first range asked) to the download done.
transfer() {
  local a b n=${3:-1}
  a=$(grep 'file size proven' "$work/$1.log" | sed -n "${n}s/^time=\([^ ]*\).*/\1/p")
  b=$(grep 'download done' "$work/$1.log" | sed -n "${n}s/^time=\([^ ]*\).*/\1/p")
  [ -n "$a" ] && [ -n "$b" ] || { echo "?"; return; }
  rate "$2" "$(echo "$(date -d "$b" +%s.%N) - $(date -d "$a" +%s.%N)" | bc -l)"
}

# raw_start NS_SERVER ADDR_IP: starts the raw libp2p server (kith-bench),
# sets raw_tcp and raw_quic to its addresses.
raw_start() {
  local s=$1 ip=$2 f=$work/raw.addrs
  rm -f "$f"
  ip netns exec "$s" "$bin/kith-bench" serve --listen /ip4/$ip/tcp/4999 --listen /ip4/$ip/udp/4999/quic-v1 --addr-file "$f" >/dev/null &
  raw_pid=$!
  pids+=($raw_pid)
  for _ in $(seq 50); do [ -s "$f" ] && break; sleep 0.1; done
  raw_tcp=$(grep /tcp/ "$f"); raw_quic=$(grep /quic-v1/ "$f")
}

# raw_round NS_CLIENT BYTES: one raw TCP and one raw QUIC stream; their
# rates go to the lists tcp_rates and quic_rates.
raw_round() {
  local c=$1 bytes=$2 out
  out=$(ip netns exec "$c" "$bin/kith-bench" send --to "$raw_tcp" --bytes "$bytes")
  echo "raw-tcp   $out"
  tcp_rates+=("$(mibs "$out")")
  # QUIC over the lossy profile moves well under 1 MiB/s here: its rate is
  # that of what it sends in RAW_QUIC_FOR (the better raw transport is TCP).
  out=$(ip netns exec "$c" "$bin/kith-bench" send --to "$raw_quic" --bytes "$bytes" --for "${RAW_QUIC_FOR:-60s}")
  echo "raw-quic  $out"
  quic_rates+=("$(mibs "$out")")
}

# mibs LINE: the MiB/s figure of a kith-bench line.
mibs() { sed -n 's/.*: \([0-9.]*\) MiB\/s.*/\1/p' <<<"$1"; }

# median X...: the median of the numbers (the mean of the middle two).
median() {
  [ $# -gt 0 ] || { echo 0; return; }
  printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'
}

# link_of NS NAME FILE: the kith:// link of the shared file FILE.
link_of() { k "$1" "$2" share ls --links | grep "$3" | grep -o 'kith://file/[^ ]*' | head -1; }

# sample FILE NS...: writes the TCP sockets (ss -tmni) of the namespaces
# to FILE five times a second, in the background, if WAN_SS is set; sets
# sampler to its pid (empty otherwise). Stop it with unsample.
sample() {
  local f=$1; shift
  sampler=
  [ -n "${WAN_SS:-}" ] || return 0
  (while sleep 0.2; do date +%T.%N; for n in "$@"; do echo "ns $n"; ip netns exec "$n" ss -tmni state established; done; done >>"$f" 2>&1) &
  sampler=$!
}
unsample() { [ -z "$sampler" ] || kill "$sampler" 2>/dev/null || true; }

# direct_round I BYTES: `kith get` of the round's file from ben to ana.
direct_round() {
  local i=$1 bytes=$2 lnk s r
  lnk=$(link_of "$B" ben "file-$name-$i.bin")
  sample "${WAN_SS:-}" "$B" "$A" # both ends
  s=$(timed k "$A" ana get "$lnk" --to "$work/got-ana") || exit 1
  unsample
  r=$(rate "$bytes" "$s")
  echo "direct    $bytes bytes in $s s: $r MiB/s (transfer $(transfer ana "$bytes" "$i"); ana's connections: $(conns ana); moved to TCP: $(moves ana ben))"
  direct_rates+=("$r")
}

# anon_round I BYTES: `kith get --anonymous` of the round's file from hal,
# through rae and ros, to cai.
anon_round() {
  local i=$1 bytes=$2 lnk s r
  lnk=$(link_of "$H" hal "anon-$name-$i.bin")
  sample "${WAN_SS:-}.anon" "$H" "$R2" "$R1" # the holder and the relays
  s=$(timed k "$C" cai get --anonymous "$lnk" --to "$work/got-cai") || exit 1
  unsample
  r=$(rate "$bytes" "$s")
  echo "anonymous $bytes bytes in $s s: $r MiB/s (transfer $(transfer cai "$bytes" "$i"); 2 relays, 3 links; moved to TCP: $(moves cai rae ros hal))"
  anon_rates+=("$r")
}

# chain_round NS_CLIENT BYTES RELAY_NS...: a raw TCP stream across the
# anonymous chain's three links, the kernel forwarding in the relays'
# namespaces: what the emulated path itself carries on this machine (three
# wanem processes share its two cores with the daemons), and what a
# connection end to end would do over that path. Its rate goes to
# chain_rates.
chain_round() {
  local c=$1 bytes=$2 out n
  shift 2
  for n in "$@"; do ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=1; done
  out=$(ip netns exec "$c" "$bin/kith-bench" send --to "$raw_tcp" --bytes "$bytes" --for "${RAW_CHAIN_FOR:-20s}")
  for n in "$@"; do ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=0; done
  echo "raw-chain $out"
  chain_rates+=("$(mibs "$out")")
}

# summary NAME: the medians of the profile's rounds, and kith's ratios to
# the better raw transport's median.
summary() {
  local tcp quic best d a ch
  tcp=$(median "${tcp_rates[@]}"); quic=$(median "${quic_rates[@]}")
  best=$(printf '%s\n' "$tcp" "$quic" | sort -g | tail -1)
  d=$(median "${direct_rates[@]}"); a=$(median "${anon_rates[@]}"); ch=$(median "${chain_rates[@]}")
  echo "-- $1, medians of ${#tcp_rates[@]} raw, ${#direct_rates[@]} direct, ${#anon_rates[@]} anonymous run(s): raw TCP $tcp, raw QUIC $quic, direct $d MiB/s ($(pct "$d" "$best") of the better raw), anonymous $a MiB/s ($(pct "$a" "$best"); raw TCP across its three links $ch, $(pct "$a" "$ch") of that)"
}

pct() { if [ "$(echo "$2 > 0" | bc)" = 1 ]; then echo "$(echo "scale=0; 100 * $1 / $2" | bc)%"; else echo "-"; fi; }

run_profile() {
  local name=$1 delay=$2 rate=$3 loss=$4 mib=$5
  mib=${SIZE_MIB:-$mib}
  local bytes=$((mib << 20)) rounds=${ROUNDS:-1} i
  tcp_rates=() quic_rates=() direct_rates=() anon_rates=() chain_rates=()
  echo
  echo "== $name: one-way delay $delay, $rate, loss $loss, file $mib MiB, $rounds round(s), TCP ${TCP_CC:-$(cat /proc/sys/net/ipv4/tcp_congestion_control)}"
  nss=()
  local A B R1 R2 H
  ns A a; ns B b
  link "$A" 1.2.0.1 "$B" 1.2.0.2 "$delay" "$rate" "$loss"
  isolated
  if part raw; then raw_start "$B" 1.2.0.2; fi
  if part direct; then
    daemon "$A" ana; daemon "$B" ben
    befriend "$A" ana "$B" ben
    mkdir -p "$work/share-ben" "$work/got-ana"
    for i in $(seq "$rounds"); do head -c "$bytes" /dev/urandom >"$work/share-ben/file-$name-$i.bin"; done
    k "$B" ben share add "$work/share-ben" --browsable >/dev/null
  fi
  # The rounds interleave the raw streams and kith's downloads, so that
  # each ratio compares figures of the same minutes.
  for i in $(seq "$rounds"); do
    if part raw; then raw_round "$A" "$bytes"; fi
    if part direct; then direct_round "$i" "$bytes"; fi
  done
  if part raw; then kill "$raw_pid" 2>/dev/null || true; fi
  part anonymous || { summary "$name"; cleanup_profile; return; }

  # A chain for the anonymous download: cai - R1 - R2 - holder, three links.
  ns R1 r1; ns R2 r2; ns H h
  local C
  ns C c
  link "$C" 1.2.1.1 "$R1" 1.2.1.2 "$delay" "$rate" "$loss"
  link "$R1" 1.2.2.1 "$R2" 1.2.2.2 "$delay" "$rate" "$loss"
  link "$R2" 1.2.3.1 "$H" 1.2.3.2 "$delay" "$rate" "$loss"
  isolated
  daemon "$C" cai; daemon "$R1" rae; daemon "$R2" ros; daemon "$H" hal
  befriend "$C" cai "$R1" rae
  befriend "$R1" rae "$R2" ros
  befriend "$R2" ros "$H" hal
  mkdir -p "$work/share-hal" "$work/got-cai"
  for i in $(seq "$rounds"); do
    if [ -f "$work/share-ben/file-$name-$i.bin" ]; then
      cp "$work/share-ben/file-$name-$i.bin" "$work/share-hal/anon-$name-$i.bin"
    else
      head -c "$bytes" /dev/urandom >"$work/share-hal/anon-$name-$i.bin"
    fi
  done
  k "$H" hal share add "$work/share-hal" --anonymous >/dev/null
  # The chain's routes, used only by the raw stream across it (forwarding
  # is on in the relays' namespaces only while that stream runs).
  ip -n "$C" route add 1.2.3.0/24 via 1.2.1.2; ip -n "$H" route add 1.2.1.0/24 via 1.2.3.1
  ip -n "$R1" route add 1.2.3.0/24 via 1.2.2.2; ip -n "$R2" route add 1.2.1.0/24 via 1.2.2.1
  raw_start "$H" 1.2.3.2
  for i in $(seq "$rounds"); do
    chain_round "$C" "$bytes" "$R1" "$R2"
    anon_round "$i" "$bytes"
  done
  kill "$raw_pid" 2>/dev/null || true
  summary "$name"
  cleanup_profile
}

# cleanup_profile stops the profile's daemons, keeps their logs in
# WAN_LOGS if set, and deletes its namespaces and files.
cleanup_profile() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
  if [ -n "${WAN_LOGS:-}" ]; then
    mkdir -p "$WAN_LOGS"
    for d in ana ben cai rae ros hal; do cp "$work/$d.log" "$WAN_LOGS/$name-$d.log" 2>/dev/null || true; done
  fi
  for n in "${nss[@]}"; do ip netns del "$n"; done
  nss=()
  rm -rf "$work"/{ana,ben,cai,rae,ros,hal,got-*,share-*}
}

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc), $(go version | cut -d' ' -f3), $(date -u +%Y-%m-%dT%H:%MZ)"
profiles=("$@")
[ ${#profiles[@]} -gt 0 ] || profiles=(50ms-500mbit 100ms-100mbit-loss 10ms-1gbit)
for p in "${profiles[@]}"; do
  case $p in
    50ms-500mbit) run_profile "$p" 25ms 500mbit 0 256 ;;
    # 256 MiB like the 50 ms profile: it was 64 MiB only while the raw
    # QUIC stream had to send it whole (minutes at 0.3 MiB/s).
    100ms-100mbit-loss) run_profile "$p" 50ms 100mbit 0.005 256 ;;
    10ms-1gbit) run_profile "$p" 5ms 1000mbit 0 512 ;;
    *) echo "wan-bench: unknown profile $p" >&2; exit 2 ;;
  esac
done
