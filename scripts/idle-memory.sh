#!/usr/bin/env bash
# Starts three kith daemons on 127.0.0.1 in temporary homes, makes the first
# friends with the other two, waits, and prints the first daemon's resident
# memory from /proc: in all (VmRSS, VmHWM), and split into what the node
# allocated (RssAnon) and the pages of its executable and other files it
# mapped (RssFile, clean pages the kernel can drop and share). Stops them
# all on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d -t kith-mem.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
go build -o "$tmp/kith" ./cmd/kith
for n in a b c; do
  "$tmp/kith" init --name "$n" --home "$tmp/$n" >/dev/null
  "$tmp/kith" up --home "$tmp/$n" --no-mdns --listen /ip4/127.0.0.1/tcp/0 --listen /ip4/127.0.0.1/udp/0/quic-v1 >"$tmp/$n.log" 2>&1 &
done
for n in a b c; do
  for _ in $(seq 100); do "$tmp/kith" status --home "$tmp/$n" >/dev/null 2>&1 && break; sleep 0.1; done
done
for p in b c; do
  "$tmp/kith" friend add "$("$tmp/kith" id --home "$tmp/$p")" --home "$tmp/a" >/dev/null
  "$tmp/kith" friend add "$("$tmp/kith" id --home "$tmp/a")" --home "$tmp/$p" >/dev/null
done
sleep 20
pid=$("$tmp/kith" status --json --home "$tmp/a" | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
online=$("$tmp/kith" status --json --home "$tmp/a" | sed -n 's/.*"friends_online": \([0-9]*\).*/\1/p')
echo "friends online: $online"
grep -E 'VmRSS|VmHWM|RssAnon|RssFile' "/proc/$pid/status"
