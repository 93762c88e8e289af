#!/usr/bin/env python3
"""A Falcosidekick-shaped receiver for the tests: POST / takes a Falco event and checks it field by
field as falcosecurity/falcosidekick's types.FalcoPayload decodes it; /ping, /healthz and /test
answer as Falcosidekick's do. Every event is appended to OUT (one JSON line: the event, and the
problems found in it, empty when it has the shape); an event with problems gets 400.

  falco-receiver.py PORT OUT [--fail-first N]   (listens on 127.0.0.1; the first N posts get 503)
"""
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PRIORITIES = {"Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"}
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
FIELD = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
KEYS = {"output", "priority", "rule", "time", "output_fields", "source", "tags", "hostname", "uuid"}

port, out = int(sys.argv[1]), sys.argv[2]
fail_first = int(sys.argv[sys.argv.index("--fail-first") + 1]) if "--fail-first" in sys.argv else 0
lock = threading.Lock()
posts = 0


def problems(e):
    p = []
    if not isinstance(e, dict):
        return ["body is not a JSON object"]
    for k in sorted(set(e) - KEYS):
        p.append(f"unknown field {k}")
    for k in ("output", "rule", "source", "hostname"):
        if not isinstance(e.get(k), str) or not e.get(k):
            p.append(f"{k}: expected a non-empty string")
    if e.get("priority") not in PRIORITIES:
        p.append(f"priority: {e.get('priority')!r} is not a Falco priority")
    if not isinstance(e.get("time"), str) or not TIME.match(e["time"]):
        p.append(f"time: {e.get('time')!r} is not RFC 3339 with nanoseconds")
    tags = e.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        p.append("tags: expected a list of strings")
    f = e.get("output_fields")
    if not isinstance(f, dict):
        p.append("output_fields: expected a flat map")
    else:
        for k, v in f.items():
            if not FIELD.match(k):
                p.append(f"output_fields: {k!r} is not a dotted field name")
            if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                p.append(f"output_fields.{k}: expected a string or a number")
    return p


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, body=b""):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path in ("/ping",):
            self.reply(200, b"pong\n")
        elif self.path in ("/healthz",):
            self.reply(200, b'{"status": "ok"}')
        else:
            self.reply(404)

    def do_POST(self):
        global posts
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        with lock:
            posts += 1
            if posts <= fail_first:
                self.reply(503)
                return
        if self.path not in ("/", "/test"):
            self.reply(404)
            return
        try:
            e = json.loads(body)
            p = problems(e)
        except ValueError as x:
            e, p = None, [f"body is not JSON: {x}"]
        if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
            p.append("Content-Type is not application/json")
        with lock, open(out, "a") as f:
            f.write(json.dumps({"event": e, "problems": p}) + "\n")
        self.reply(400 if p else 200)


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
