#!/usr/bin/env bash
# Drives a real Sluice (debug build) with Splunk's own Python HEC client,
# indexer acknowledgements on, then checks the queue holds every event.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
venv="$root/target/interop-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/interop/requirements.txt

cargo build --quiet --bin sluice
bin="$root/target/debug/sluice"
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

token=$("$venv/bin/python" -c 'import uuid; print(uuid.uuid4())')
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
name = "python"
token = "$token"
ack = "durable"
TOML

"$bin" run --config "$work/sluice.toml" 2> "$work/sluice.log" &
pid=$!
port=""
for _ in $(seq 1 100); do
  port=$("$venv/bin/python" - "$work/sluice.log" <<'PY' || true
import json, sys
for line in open(sys.argv[1]):
    try:
        f = json.loads(line).get("fields", {})
    except ValueError:
        continue
    if f.get("message") == "listening":
        print(f["hec"].rsplit(":", 1)[1])
        break
PY
)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/sluice.log"; echo "interop: sluice exited early"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$work/sluice.log"; echo "interop: sluice did not start"; exit 1; }

out=$("$venv/bin/python" tests/interop/python_hec.py --url "https://127.0.0.1:$port" \
  --token "$token" --ca "$work/data/tls/ca.pem" --events 200) || {
  echo "$out"; echo "--- sluice log"; tail -n 50 "$work/sluice.log"; exit 1; }
echo "$out" | tail -n 3
sent=$(echo "$out" | sed -n 's/.*interop: sent=\([0-9]*\) acked=\([0-9]*\) ok.*/\1/p' | tail -n 1)

# Every accepted event is archived by the embedded default output: wait for
# the queue to empty (the CLI asks the running Sluice over its admin socket).
queued=""
for _ in $(seq 1 600); do
  queued=$("$bin" queue stats --config "$work/sluice.toml" --json | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["events"])')
  [ "$queued" = "0" ] && break
  sleep 0.1
done
kill -TERM "$pid"
wait "$pid" || { echo "interop: sluice did not exit 0 on SIGTERM"; exit 1; }
pid=""
read -r archived distinct < <("$venv/bin/python" - "$work/data/archive" <<'PY'
import gzip, json, os, sys
n, ids = 0, set()
for name in os.listdir(sys.argv[1]):
    with gzip.open(os.path.join(sys.argv[1], name), "rt") as f:
        for line in f:
            if line.strip():
                n += 1
                ids.add(json.loads(line)["fields"]["event_id"])
print(n, len(ids))
PY
)
# Exact: every event sent is archived once, no loss and no duplicate.
if [ -z "$sent" ] || [ "$queued" != "0" ] || [ "$archived" != "$sent" ] || [ "$distinct" != "$sent" ]; then
  echo "interop: FAILED: client sent ${sent:-?} events; archive holds $archived ($distinct distinct), queue still $queued"
  exit 1
fi
echo "interop: archive holds exactly the $sent events the client sent, once each"
echo "interop: 1 passed, 0 failed"
