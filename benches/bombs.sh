#!/usr/bin/env bash
# Memory under hostile input, with the default max_event_bytes (1 MiB):
#  1. four concurrent /event requests, each a ~1 MB gzip body holding one
#     object that never ends (decoding to 1 GiB, under max_decoded_bytes);
#  2. forwarding one /raw record whose body is a single 1000 MiB line between
#     two short ones (a ~1 MB gzip body), through the embedded file archive.
# Prints the answers and the Sluice process's peak RSS (VmHWM) after each.
# Usage: benches/bombs.sh [path to a sluice binary, default: release build]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet --bin sluice
  bin="$root/target/release/sluice"
fi
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
token=11111111-2222-4333-8444-555555555555
cat > "$work/sluice.toml" <<TOML
data_dir = "$work/data"
[server]
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
shutdown_grace = "1s"
[queue]
min_free_bytes = 0
[log]
level = "info"
format = "json"
[[tokens]]
name = "bench"
token = "$token"
TOML

peak_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

start() {
  "$bin" run --config "$work/sluice.toml" 2> "$work/sluice.log" &
  pid=$!
  port=""
  for _ in $(seq 1 200); do
    port=$(sed -n 's/.*"message":"listening".*"hec":"127.0.0.1:\([0-9]*\)".*/\1/p' "$work/sluice.log" | head -n 1)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$work/sluice.log"; exit 1; }
}
stop() { kill -TERM "$pid"; wait "$pid" || true; pid=""; }

echo "building the inputs (gzip of 1 GiB each)..."
{ printf '{"event":"ok"} {"event":"'; head -c 1073741824 /dev/zero | tr '\0' 'a'; } | gzip -9 > "$work/event-bomb.gz"
{ printf 'line one\n'; head -c 1048576000 /dev/zero | tr '\0' 'x'; printf '\nline two\n'; } | gzip -9 > "$work/raw-line.gz"
ls -l "$work/event-bomb.gz" "$work/raw-line.gz" | awk '{print $5, $9}'

start
echo "idle: RSS $(rss_mb "$pid") MB"
for i in 1 2 3 4; do
  curl -sS --http2 --cacert "$work/data/tls/ca.pem" -H "Authorization: Splunk $token" \
    -H 'Content-Encoding: gzip' --data-binary @"$work/event-bomb.gz" \
    "https://127.0.0.1:$port/services/collector/event" > "$work/answer.$i" &
done
wait %2 %3 %4 %5 2>/dev/null || true
sleep 0.5
for i in 1 2 3 4; do echo "bomb $i answer: $(cat "$work/answer.$i")"; done
echo "four concurrent /event bombs: peak RSS $(peak_mb "$pid") MB"
stop

rm -rf "$work/data/queue" "$work/data/archive"
start
echo "idle: RSS $(rss_mb "$pid") MB"
curl -sS --http2 --cacert "$work/data/tls/ca.pem" -H "Authorization: Splunk $token" \
  -H 'Content-Encoding: gzip' --data-binary @"$work/raw-line.gz" \
  "https://127.0.0.1:$port/services/collector/raw?sourcetype=bench"
echo
# The file output forwards it; wait for the queue to empty.
for _ in $(seq 1 600); do
  events=$("$bin" queue stats --config "$work/sluice.toml" --json | sed -n 's/.*"events":\([0-9]*\).*/\1/p')
  [ "$events" = "0" ] && break
  sleep 0.5
done
echo "queue events left: $events; archived: $(cat "$work"/data/archive/* | gzip -dc 2>/dev/null | wc -l) lines"
echo "dead letters: $("$bin" queue dead list --config "$work/sluice.toml" 2>/dev/null | cut -c1-120)"
echo "forwarding a record of one 1000 MiB line: peak RSS $(peak_mb "$pid") MB"
stop
