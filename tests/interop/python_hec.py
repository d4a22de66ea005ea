#!/usr/bin/env python3
r"""Interop driver: Splunk's own Python HEC client (PyPI `python-splunk-logging`,
import name `splunk_logging`) against a Splunk-HEC-compatible endpoint, with
indexer acknowledgements switched on.

    python tests/interop/python_hec.py --url https://127.0.0.1:PORT --token TOKEN \
        [--ca PATH/ca.pem [--no-strict-x509] | --insecure] [--events N] \
        [--ack-timeout S] [--ack-poll-interval S] [--index NAME] [--overall-timeout S]

Every event goes through the library's public API (HecForwarder,
BatchHecForwarder, HecHandler on a logging.Logger), all with indexer_ack=True,
so each call returns only after the library itself has seen the ackId of the
request confirmed `true` on /services/collector/ack; the library raises
(HTTPStatusError, HecAckError, HecAckTimeoutError, HecWorkerError) otherwise.

On top of that, an httpx response hook on each forwarder's client keeps a
ledger of what actually crossed the wire: events per successful
/services/collector/event request, the ackId returned for it, and which
(channel, ackId) pairs /services/collector/ack confirmed. The run passes only
if every library call succeeded AND events on the wire == acked events == N.

Success: exit 0, last line `python-splunk-logging interop: sent=N acked=N ok`.
Failure: exit 1, last line `python-splunk-logging interop: FAILED: ...`.
"""

import argparse
import datetime
import json
import logging
import os
import ssl
import sys
import threading
import traceback
import urllib.parse
import uuid

try:
    import httpx
    from splunk_logging.exceptions import HecError
    from splunk_logging.formatters import JsonFormatter
    from splunk_logging.forwarders import BatchHecForwarder, HecForwarder
    from splunk_logging.handlers import HecHandler
except ImportError as import_error:  # pragma: no cover - environment problem
    print(
        f"python-splunk-logging interop: FAILED: cannot import the client library ({import_error}); "
        "install tests/interop/requirements.txt",
        flush=True,
    )
    sys.exit(1)

PREFIX = "python-splunk-logging interop"
MIN_EVENTS = 8
FORWARD_EVENTS_CHUNK = 100


class InteropFailure(Exception):
    pass


def log(msg):
    print(f"[python_hec] {msg}", flush=True)


# --------------------------------------------------------------------------
# Wire ledger (observation only: it never changes what the library sends)
# --------------------------------------------------------------------------
def count_json_objects(body: bytes) -> int:
    """Count the concatenated JSON values in a /services/collector/event body."""
    text = body.decode("utf-8")
    decoder = json.JSONDecoder()
    pos, n = 0, 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos >= len(text):
            return n
        _, pos = decoder.raw_decode(text, pos)
        n += 1


class AckLedger:
    def __init__(self):
        self._lock = threading.Lock()
        self.issued = {}  # (channel, ackId) -> number of events in that request
        self.confirmed = set()  # (channel, ackId) seen as true on /ack
        self.ack_polls = 0
        self.problems = []

    def attach(self, forwarder, label):
        # `_client` is the httpx.Client the forwarder creates in _create_client();
        # adding a response hook is plain httpx API and does not alter requests.
        client = getattr(forwarder, "_client", None)
        if not isinstance(client, httpx.Client):
            raise InteropFailure(f"{label}: cannot find the forwarder's httpx client to observe acks")
        hooks = client.event_hooks
        hooks["response"] = list(hooks.get("response", [])) + [self._on_response]
        client.event_hooks = hooks

    def _problem(self, msg):
        with self._lock:
            self.problems.append(msg)

    def _on_response(self, response):
        # Must never raise: an exception here would surface inside the library.
        try:
            request = response.request
            path = request.url.path
            channel = request.headers.get("x-splunk-request-channel") or request.url.params.get("channel")
            if response.status_code != 200:
                return
            response.read()
            if path.endswith("/services/collector/event"):
                n = count_json_objects(request.content)
                body = response.json()
                ack_id = body.get("ackId", body.get("ackID"))
                if body.get("code") != 0 or body.get("text") != "Success":
                    self._problem(f"event response not Success/0: {body!r}")
                if ack_id is None:
                    return  # the library raises HecAckError for this itself
                key = (channel, int(ack_id))
                with self._lock:
                    if key in self.issued:
                        self.problems.append(f"ackId {ack_id} issued twice on channel {channel}")
                    self.issued[key] = n
            elif path.endswith("/services/collector/ack"):
                body = response.json()
                with self._lock:
                    self.ack_polls += 1
                    for k, v in (body.get("acks") or {}).items():
                        if v is True:
                            self.confirmed.add((channel, int(k)))
                        elif v is not False:
                            self.problems.append(f"ack status for {k} is not a JSON boolean: {v!r}")
        except Exception as error:  # noqa: BLE001
            self._problem(f"could not inspect {response.request.url.path}: {type(error).__name__}: {error}")

    def totals(self):
        with self._lock:
            on_wire = sum(self.issued.values())
            acked = sum(n for key, n in self.issued.items() if key in self.confirmed)
            unacked = sorted((ch, i) for (ch, i) in self.issued if (ch, i) not in self.confirmed)
            return on_wire, acked, unacked, list(self.problems), self.ack_polls


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------
def describe(error: BaseException) -> str:
    parts = []
    seen = set()
    e = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = f"{type(e).__name__}: {e}"
        if isinstance(e, httpx.HTTPStatusError):
            try:
                body = e.response.text[:300]
            except Exception:  # noqa: BLE001
                body = "<unreadable>"
            text = f"HTTP {e.response.status_code} from {e.request.method} {e.request.url.path}: {body}"
        if not parts or parts[-1] != text:
            parts.append(text)
        e = getattr(e, "cause", None) or e.__cause__ or e.__context__
    return " <- caused by: ".join(parts)


def plan(n):
    """Split N events across the library's send paths (every path gets >= 1)."""
    singles = 4  # string / dict+fields+epoch / datetime / ISO-8601 string
    rest = n - singles
    handler_plain = min(max(1, rest // 8), 25)  # one request + ack each: keep it small
    handler_batch = max(1, rest // 8)
    multi = max(1, rest // 4)
    batch_fwd = rest - handler_plain - handler_batch - multi
    assert batch_fwd >= 1
    return {
        "forwarder_singles": singles,
        "forwarder_multi": multi,
        "batch_forwarder": batch_fwd,
        "handler": handler_plain,
        "handler_batched": handler_batch,
    }


def main():
    ap = argparse.ArgumentParser(
        description="Drive a HEC endpoint with Splunk's python-splunk-logging client, indexer acks on."
    )
    ap.add_argument("--url", required=True, help="base URL, e.g. https://127.0.0.1:8088 (no path)")
    ap.add_argument("--token", required=True, help="HEC token (sent as 'Authorization: Splunk <token>')")
    trust = ap.add_mutually_exclusive_group()
    trust.add_argument("--ca", help="PEM CA bundle to trust for the server certificate")
    trust.add_argument("--insecure", action="store_true", help="do not verify the server certificate")
    ap.add_argument(
        "--no-strict-x509",
        action="store_true",
        help="with --ca: do not force ssl.VERIFY_X509_STRICT (on by default, as in Python >= 3.13)",
    )
    ap.add_argument("--events", type=int, default=100, help=f"total events to send (>= {MIN_EVENTS}; default 100)")
    ap.add_argument("--ack-timeout", type=float, default=30.0, help="library ack_timeout in seconds (default 30)")
    ap.add_argument("--ack-poll-interval", type=float, default=0.2, help="library ack_poll_interval (default 0.2)")
    ap.add_argument("--index", default="main", help="index to set on events that carry one ('' to omit; default main)")
    ap.add_argument(
        "--overall-timeout",
        type=float,
        default=None,
        help="hard limit for the whole run in seconds (default: 120 + 4 * ack-timeout)",
    )
    args = ap.parse_args()
    if args.events < MIN_EVENTS:
        ap.error(f"--events must be at least {MIN_EVENTS}")
    if args.ack_timeout <= 0 or args.ack_poll_interval <= 0:
        ap.error("--ack-timeout and --ack-poll-interval must be positive")

    url = urllib.parse.urlsplit(args.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        ap.error("--url must look like https://HOST:PORT")
    if url.path not in ("", "/") or url.query:
        ap.error("--url must not carry a path or query: the library always posts to /services/collector/*")
    use_ssl = url.scheme == "https"
    port = url.port or 8088

    if not use_ssl:
        verify = False
    elif args.insecure:
        verify = False
    elif args.ca:
        # The library passes verify_ssl straight to httpx.Client(verify=...),
        # which accepts an ssl.SSLContext (the form httpx recommends).
        try:
            verify = ssl.create_default_context(cafile=args.ca)
        except (OSError, ssl.SSLError) as error:
            print(f"{PREFIX}: FAILED: cannot load --ca {args.ca}: {error}", flush=True)
            return 1
        if not args.no_strict_x509:
            # Python >= 3.13 turns this on in create_default_context(); set it
            # on older interpreters too so every run checks what current
            # clients check (e.g. a leaf lacking Authority Key Identifier fails).
            verify.verify_flags |= ssl.VERIFY_X509_STRICT
    else:
        verify = True  # system trust store

    overall = args.overall_timeout if args.overall_timeout is not None else 120 + 4 * args.ack_timeout

    def watchdog():
        print(f"{PREFIX}: FAILED: overall timeout of {overall:.0f}s exceeded (hung request or ack wait)", flush=True)
        os._exit(1)

    timer = threading.Timer(overall, watchdog)
    timer.daemon = True
    timer.start()

    counts = plan(args.events)
    trust_desc = f"CA {args.ca}{'' if args.no_strict_x509 else ' (X509 strict)'}" if args.ca and use_ssl else verify
    log(f"target {url.scheme}://{url.hostname}:{port} verify={trust_desc}")
    log(f"plan {counts} (total {args.events}), ack_timeout={args.ack_timeout}s poll={args.ack_poll_interval}s")

    ledger = AckLedger()
    run_id = uuid.uuid4().hex[:12]
    common = dict(
        host=url.hostname,
        port=port,
        token=args.token,
        use_ssl=use_ssl,
        verify_ssl=verify,
        default_source="sluice-interop:python-splunk-logging",
        default_sourcetype="_json",
        indexer_ack=True,
        ack_poll_interval=args.ack_poll_interval,
        ack_timeout=args.ack_timeout,
    )
    index_kw = {"index": args.index} if args.index else {}
    sent = 0
    phase = "setup"
    try:
        # ---- 1. HecForwarder: one request + one ack per call ------------------
        phase = "HecForwarder.forward_event"
        channel = str(uuid.uuid4())
        with HecForwarder(**common, channel_id=channel) as fwd:
            ledger.attach(fwd, "HecForwarder")
            log(f"{phase}: channel {channel}")
            fwd.forward_event(f"plain string event run={run_id}")  # event is a JSON string
            sent += 1
            fwd.forward_event(
                {"kind": "dict-with-fields", "run": run_id, "seq": 1, "nested": {"a": [1, 2, 3], "ok": True}},
                eventtime=1700000000.25,
                host="interop-host",
                source="interop:source",
                sourcetype="interop:sourcetype",
                **index_kw,
            )
            sent += 1
            fwd.forward_event(
                {"kind": "dict-datetime", "run": run_id, "seq": 2, "unicode": "h\u00e9llo \u2713"},
                eventtime=datetime.datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=datetime.timezone.utc),
            )
            sent += 1
            fwd.forward_event(
                {"kind": "dict-isotime", "run": run_id, "seq": 3},
                eventtime="2024-05-06T07:08:09.123+00:00",
                sourcetype="interop:iso",
            )
            sent += 1

            # ---- 2. HecForwarder.forward_events: concatenated JSON, one ackId per POST
            phase = "HecForwarder.forward_events"
            base = 1700000100
            events = []
            for i in range(counts["forwarder_multi"]):
                if i % 5 == 4:
                    events.append(f"multi string event {i} run={run_id}")
                else:
                    events.append({"kind": "multi", "run": run_id, "seq": i, "t": base + i})
            for start in range(0, len(events), FORWARD_EVENTS_CHUNK):
                chunk = events[start : start + FORWARD_EVENTS_CHUNK]
                fwd.forward_events(
                    chunk,
                    eventtime=lambda e: e["t"] if isinstance(e, dict) else base,
                    host="interop-multi",
                    source="interop:multi",
                    **index_kw,
                )
                sent += len(chunk)
            log(f"{phase}: ok ({sent} events so far)")

        # ---- 3. BatchHecForwarder: background worker, batches acked one by one
        phase = "BatchHecForwarder"
        channel = str(uuid.uuid4())
        n = counts["batch_forwarder"]
        batch_size = max(2, min(50, n // 3))
        bfwd = BatchHecForwarder(
            **common,
            channel_id=channel,
            batch_size=batch_size,
            flush_interval=0.5,
            enqueue_timeout=args.ack_timeout + 30,
        )
        ledger.attach(bfwd, "BatchHecForwarder")
        log(f"{phase}: channel {channel}, {n} events, batch_size {batch_size}")
        try:
            half = n // 2
            bfwd.forward_events(
                [{"kind": "batch", "run": run_id, "seq": i} for i in range(half)],
                eventtime=lambda e: 1700000200 + e["seq"],
                sourcetype="interop:batch",
            )
            for i in range(half, n):
                bfwd.forward_event(
                    {"kind": "batch-single", "run": run_id, "seq": i} if i % 3 else f"batch string {i} run={run_id}",
                    eventtime=1700000200 + i,
                )
            bfwd.flush()  # raises HecWorkerError if any batch send/ack failed
        finally:
            bfwd.close()  # also re-raises a delivery error
        sent += n
        log(f"{phase}: ok ({sent} events so far)")

        # ---- 4. HecHandler on a logging.Logger (synchronous, ack per record)
        phase = "HecHandler"
        for batched in (False, True):
            phase = "HecHandler(batch_enabled=True)" if batched else "HecHandler"
            channel = str(uuid.uuid4())
            n = counts["handler_batched" if batched else "handler"]
            extra_kw = dict(batch_size=max(2, min(50, n // 4)), flush_interval=0.5, enqueue_timeout=args.ack_timeout + 30) if batched else {}
            handler = HecHandler(
                **common,
                channel_id=channel,
                ignore_exceptions=False,  # default True would only print errors
                batch_enabled=batched,
                **extra_kw,
            )
            ledger.attach(handler._hec, phase)
            # Default JsonFormatter drops plain-string messages; keep them as fields.
            handler.setFormatter(JsonFormatter(message="%(message)s", level="%(levelname)s", logger="%(name)s"))
            logger = logging.getLogger(f"sluice.interop.{'batched' if batched else 'sync'}.{run_id}")
            logger.propagate = False
            logger.setLevel(logging.DEBUG)
            logger.addHandler(handler)
            log(f"{phase}: channel {channel}, {n} records")
            try:
                for i in range(n):
                    if i % 2 == 0:
                        logger.info(
                            "handler record %d run=%s",
                            i,
                            run_id,
                            extra={"host": "interop-logger", "source": "interop:logging", "sourcetype": "interop:log", **index_kw},
                        )
                    else:
                        logger.warning({"kind": "handler-dict", "run": run_id, "seq": i})
                handler.flush()  # batched: waits for delivery + acks, raises on failure
            finally:
                logger.removeHandler(handler)
                handler.close()  # ignore_exceptions=False -> re-raises delivery errors
            sent += n
            log(f"{phase}: ok ({sent} events so far)")

        phase = "verification"
    except (HecError, httpx.HTTPError, InteropFailure, OSError, ValueError, RuntimeError) as error:
        timer.cancel()
        print(f"{PREFIX}: FAILED during {phase} after sent={sent}: {describe(error)}", flush=True)
        return 1
    except Exception as error:  # noqa: BLE001
        timer.cancel()
        traceback.print_exc()
        print(f"{PREFIX}: FAILED during {phase} after sent={sent}: unexpected {describe(error)}", flush=True)
        return 1

    timer.cancel()
    on_wire, acked, unacked, problems, polls = ledger.totals()
    log(f"ledger: events on wire={on_wire} acked={acked} ack polls={polls} ackIds issued={len(ledger.issued)}")
    failures = []
    if sent != args.events:
        failures.append(f"driver handed {sent} events to the library, expected {args.events}")
    if on_wire != sent:
        failures.append(f"{on_wire} events accepted on the wire, expected {sent}")
    if acked != sent:
        failures.append(f"{acked} events confirmed by /services/collector/ack, expected {sent}; unacked {unacked[:10]}")
    failures.extend(sorted(set(problems))[:5])
    if len(set(problems)) > 5:
        failures.append(f"... and {len(set(problems)) - 5} more protocol problems")
    if failures:
        print(f"{PREFIX}: FAILED: " + "; ".join(failures), flush=True)
        return 1
    print(f"{PREFIX}: sent={sent} acked={acked} ok", flush=True)
    return 0


if __name__ == "__main__":
    status = main()
    # Every handler was closed (and its errors reported) above; keep
    # logging.shutdown() at exit from re-raising a failed batch handler's
    # delivery error after the verdict line.
    logging.raiseExceptions = False
    sys.exit(status)
