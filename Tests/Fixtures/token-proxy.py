#!/usr/bin/env python3
"""A bearer-token front for a registry, as Docker Hub and most registries work: /v2/ answers 401 with
a Bearer challenge naming this server's /token; /token checks Basic credentials and issues a token;
requests with the token are proxied to the upstream registry. Loopback only; for minewatch tests.
Usage: token-proxy.py LISTEN_PORT UPSTREAM_PORT USER PASSWORD
"""
import base64
import http.server
import secrets
import sys
import urllib.error
import urllib.request

port, upstream, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
TOKENS = set()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("token-proxy: " + fmt % args + "\n")

    def do_GET(self):
        if self.path.startswith("/token"):
            auth = self.headers.get("Authorization", "")
            want = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if auth != want or "scope=repository" not in self.path:
                self.send_response(401)
                self.end_headers()
                return
            tok = secrets.token_hex(16)
            TOKENS.add(tok)
            body = ('{"token": "%s", "expires_in": 300}' % tok).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in TOKENS:
            self.send_response(401)
            self.send_header("WWW-Authenticate",
                             f'Bearer realm="http://127.0.0.1:{port}/token",service="test-registry",scope="repository:mw/eng:pull"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        req = urllib.request.Request(f"http://127.0.0.1:{upstream}{self.path}",
                                     headers={k: v for k, v in self.headers.items() if k.lower() in ("accept",)})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                data = r.read()
                status = r.status
                headers = r.headers
        except urllib.error.HTTPError as e:
            data, status, headers = e.read(), e.code, e.headers
        self.send_response(status)
        for k in ("Content-Type", "Docker-Content-Digest"):
            if headers.get(k):
                self.send_header(k, headers[k])
        # Chunked, to exercise the client's chunked decoding.
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(0, len(data), 65536):
            part = data[i:i + 65536]
            self.wfile.write(b"%x\r\n" % len(part) + part + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")


http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
