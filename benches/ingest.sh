#!/usr/bin/env bash
# End-to-end ingest benchmark: release Sluice + `sluice loadgen` on loopback.
# Usage: benches/ingest.sh [seconds per run, default 15]
# SLUICE_BIN=path runs that binary instead of building the release one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${1:-15}
bin=${SLUICE_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet --bin sluice
  bin="$root/target/release/sluice"
fi
work=$(mktemp -d)
# The shared sample files (loadgen without --file would generate traffic).
files=()
for f in "$root"/../shared/samples/*.ndjson; do files+=(--file "$f"); done
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
max_bytes = 107374182400
[log]
level = "info"
format = "json"
[[tokens]]
name = "bench"
token = "$token"
ack = "durable"
# Ingest only: an indexer nobody listens on keeps everything queued.
[[outputs]]
name = "held"
type = "splunk"
urls = ["http://127.0.0.1:9"]
token = "unused"
retry_max = "60s"
TOML
"$bin" run --config "$work/sluice.toml" 2> "$work/sluice.log" &
pid=$!
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*"message":"listening".*"hec":"127.0.0.1:\([0-9]*\)".*/\1/p' "$work/sluice.log" | head -n 1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$work/sluice.log"; exit 1; }
mport=$(sed -n 's/.*"message":"listening".*"metrics":"127.0.0.1:\([0-9]*\)".*/\1/p' "$work/sluice.log" | head -n 1)
url="https://127.0.0.1:$port"
run() {
  echo "== $*"
  "$bin" loadgen --url "$url" --token "$token" --ca "$work/data/tls/ca.pem" --duration "${secs}s" "${files[@]}" "$@" 2>/dev/null
  echo
}
run --batch-lines 10000 --concurrency 2
run --batch-lines 10000 --concurrency 4
run --batch-lines 10000 --concurrency 8
run --batch-lines 1000 --concurrency 8
run --batch-lines 1000 --concurrency 16
best=$("$bin" loadgen --url "$url" --token "$token" --ca "$work/data/tls/ca.pem" --duration "${secs}s" "${files[@]}" \
  --batch-lines 10000 --concurrency 4 --json 2>/dev/null | sed -n 's/.*"events_per_second": *\([0-9.]*\).*/\1/p')
half=$(awk -v b="$best" 'BEGIN { printf "%d", b / 2 }')
run --batch-lines 10000 --concurrency 8 --rate "$half"
echo "== queue after the runs"
"$bin" queue stats --config "$work/sluice.toml"
echo "== server memory"
curl -s "http://127.0.0.1:$mport/metrics" | grep -E '^process_(resident_memory_bytes|cpu_seconds_total)'
