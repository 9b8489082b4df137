"""Tracing (scenario tr, issue 22): what OpenTelemetry tracing costs. Replicas on the run's Redis,
each under its own key prefix: the binary with tracing off (the default), the same with
`OTEL_EXPORTER_OTLP_ENDPOINT` at an OTLP/HTTP sink in this harness (`otlp-sink`), which answers 200
to every export and counts the bytes, and, when the run has one (`SKIFF_BASELINE_BIN`), the
baseline binary built before tracing. Each takes the plain enqueue and dequeue of (a) and (b) by
wrk, in rounds, their order reversed every other round, with the CPU per request of the replica,
Redis and the sink."""

import glob
import http.server
import os
import re
import threading

from .formatting import add_merge_command, combined, load, median_ratio_text as ratio_text, partial_run_note, rate_text, round_ratios

HEADING = "## Tracing"
TARGETS = ("before", "off", "routed", "sampled", "on")
TARGET_TEXT = {"before": "before tracing (baseline binary)", "off": "off", "routed": "off, `FAST_PATH=false`",
               "sampled": "on, 10 % sampled", "on": "on, every request"}
# Each row's ratio is to this row's rate.
BASE = {"off": "before", "routed": "off", "sampled": "off", "on": "off"}
PHASES = ("enqueue", "dequeue")


# --- the sink -------------------------------------------------------------------------------------

class SinkHandler(http.server.BaseHTTPRequestHandler):
    """Takes `POST /v1/traces` (any body) with 200 and an empty protobuf/JSON answer."""

    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    exports = 0
    bytes = 0

    def do_POST(self):  # noqa: N802 (the http.server name)
        length = int(self.headers.get("Content-Length") or 0)
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)
        with SinkHandler.lock:
            SinkHandler.exports += 1
            SinkHandler.bytes += length
        json_answer = "json" in (self.headers.get("Content-Type") or "")
        body = b"{}" if json_answer else b""
        self.send_response(200)
        self.send_header("Content-Type", "application/json" if json_answer else "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        """`GET /stats`: the exports and bytes so far."""
        with SinkHandler.lock:
            body = ('{"exports": %d, "bytes": %d}' % (SinkHandler.exports, SinkHandler.bytes)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def command_otlp_sink(args):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), SinkHandler)
    server.serve_forever()


# --- the report -----------------------------------------------------------------------------------

def results(d):
    """{(target, phase): {round: wrk result}}."""
    found = {}
    for path in glob.glob(os.path.join(d, "tr-*-*-*.json")):
        match = re.match(r"tr-(before|off|routed|sampled|on)-(enqueue|dequeue)-(\d+)\.json$", os.path.basename(path))
        if not match:
            continue
        result = load(d, os.path.basename(path)[:-5])
        if result:
            found.setdefault((match.group(1), match.group(2)), {})[int(match.group(3))] = result
    return found


def section(d, machine=None):
    """The tracing section of BENCHMARKS.md, or nothing when the scenario did not run."""
    runs = results(d)
    if not runs:
        return []
    meta = load(d, "tr-meta") or {}
    machine = machine or load(d, "machine") or {}
    sink = load(d, "tr-sink") or {}
    out = [HEADING, ""] + partial_run_note(meta, machine)
    phases = {key: combined(list(value.values())) for key, value in runs.items()}
    first = next(iter(next(iter(runs.values())).values()))
    out += ["Replicas on the run's Redis, each under its own key prefix: this binary with tracing **off** (no "
            "`OTEL_EXPORTER_OTLP_ENDPOINT`, the default), off with `FAST_PATH=false` (every request through the router, "
            "as with tracing on: what the fast path saves), and **on** (`OTEL_EXPORTER_OTLP_ENDPOINT` at an OTLP/HTTP "
            "sink in this harness that answers 200 to every export), once with a tenth of the traces sampled "
            "(`parentbased_traceidratio` 0.1, as terraform deploys it) and once with every request traced and "
            "exported%s. Each takes the plain single-message `POST /api/bench-tr` of (a) and the plain "
            "`GET /api/bench-tr-get?timeout=0` of (b) (its queue pre-filled) from wrk, %s connections, %d rounds of %s s "
            "each, the replicas' order reversed every other round. CPU per request (µs) of the replica, Redis and the "
            "sink, from /proc around each run. With tracing on every request goes through the router (the fast path "
            "is off), makes a server span, a `send` or `receive` span and a span per Redis command, and a message "
            "keeps its sampled send span's context (a version 3 envelope), so such sends are not merged into shared "
            "script calls. Ratio: off against before, the others against off, as the median of the rounds' ratios (each "
            "round's two rates measured minutes apart at most) with their range." % (
                ", and the baseline binary built **before** tracing (%s)" % machine.get("baseline_source", "?") if any(key[0] == "before" for key in phases) else "",
                first.get("connections", "?"), meta.get("rounds", 1), meta.get("seconds", "?")),
            "",
            "| request | tracing | msg/s | ratio (rounds' range) | Skiff µs/req | Redis µs/req | sink µs/req | failed |",
            "|---|---|---|---|---|---|---|---|"]

    def cpu(phase, name):
        value = phase["cpu_us"].get(name)
        return "–" if value is None else "%.1f" % value

    for name in PHASES:
        for target in TARGETS:
            phase = phases.get((target, name))
            if not phase:
                continue
            ratio = ratio_text(round_ratios(runs[(target, name)], runs.get((BASE.get(target), name), {})))
            out.append("| %s | %s | %s | %s | %s | %s | %s | %d |" % (
                "`POST /api/{q}`" if name == "enqueue" else "`GET /api/{q}`", TARGET_TEXT[target], rate_text(phase["rate"]),
                ratio, cpu(phase, "skiff"), cpu(phase, "redis"), cpu(phase, "sink") if target in ("on", "sampled") else "–", phase["bad"]))
    if sink.get("exports"):
        # Both traced replicas export to the sink: every request of `on`, a tenth of `sampled`'s.
        traced = sum(phases[key]["ok"] for key in phases if key[0] == "on") + sum(
            phases[key]["ok"] for key in phases if key[0] == "sampled") / 10
        out += ["", "- The sink took %s exports, %s bytes of spans (about %.0f B per recorded request)." % (
            rate_text(sink["exports"]), rate_text(sink["bytes"]), sink["bytes"] / max(1, traced))]
    out.append("")
    return out


def add_commands(sub):
    p = sub.add_parser("otlp-sink", help="an OTLP/HTTP endpoint that takes every export (scenario tr)")
    p.add_argument("--port", type=int, required=True)
    p.set_defaults(func=command_otlp_sink)
    add_merge_command(sub, "tracing-merge", "tracing", section, HEADING)
