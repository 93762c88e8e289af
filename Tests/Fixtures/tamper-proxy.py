#!/usr/bin/env python3
"""A registry front that lies, for minewatch's integrity tests (loopback only).

Usage: tamper-proxy.py LISTEN_PORT UPSTREAM_PORT [--swap FROM=TO]... [--shrink] [--cert C --key K]

  --swap FROM=TO  a GET of blob FROM is answered with the bytes of blob TO (a registry serving a
                  blob that does not match its digest); manifests declare TO's size for FROM, so only
                  the digest is a lie
  --shrink        manifests are rewritten to declare every layer 100 bytes long (and lose their
                  Docker-Content-Digest), while blobs are served whole: a download must stop at the
                  declared size
  --cert/--key    serve HTTPS with this certificate
  --throttle      blobs are sent in 64 KiB pieces 10 ms apart, so a client that stops early is seen

Every blob answer is logged with the bytes it sent, and whether the client hung up first, so a
test can see that a download was cut short.
"""
import http.server
import json
import time
import socketserver
import ssl
import sys
import urllib.error
import urllib.request

args = sys.argv[1:]
port, upstream = int(args[0]), int(args[1])
swaps, shrink, cert, key, throttle = {}, False, None, None, False
i = 2
while i < len(args):
    if args[i] == "--swap":
        a, b = args[i + 1].split("=", 1)
        swaps[a] = b
        i += 2
    elif args[i] == "--shrink":
        shrink = True
        i += 1
    elif args[i] == "--throttle":
        throttle = True
        i += 1
    elif args[i] == "--cert":
        cert = args[i + 1]
        i += 2
    elif args[i] == "--key":
        key = args[i + 1]
        i += 2
    else:
        sys.exit("unknown argument " + args[i])


def fetch(path, headers):
    req = urllib.request.Request(f"http://127.0.0.1:{upstream}{path}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        sys.stderr.write("tamper-proxy: " + fmt % a + "\n")
        sys.stderr.flush()

    def do_GET(self):
        path = self.path
        fwd = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "authorization")}
        blob = "/blobs/" in path
        if blob:
            digest = path.rsplit("/", 1)[1]
            if digest in swaps:
                path = path.rsplit("/", 1)[0] + "/" + swaps[digest]
        status, headers, data = fetch(path, fwd)
        out_headers = {"Content-Type": headers.get("Content-Type", "application/octet-stream")}
        if "/manifests/" in path and (shrink or swaps) and status == 200:
            m = json.loads(data)
            for layer in m.get("layers", []):
                if shrink:
                    layer["size"] = 100
                elif layer.get("digest") in swaps:
                    repo = path.split("/manifests/")[0]
                    layer["size"] = len(fetch(repo + "/blobs/" + swaps[layer["digest"]], fwd)[2])
            data = json.dumps(m).encode()
        elif headers.get("Docker-Content-Digest") and not blob:
            out_headers["Docker-Content-Digest"] = headers["Docker-Content-Digest"]
        self.send_response(status)
        for k, v in out_headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        sent = 0
        try:
            piece = 65536 if throttle else 16384
            for j in range(0, len(data), piece):
                self.wfile.write(data[j:j + piece])
                self.wfile.flush()
                sent += len(data[j:j + piece])
                if throttle and blob:
                    time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        if blob:
            self.log_message("blob %s sent %d of %d bytes", self.path.rsplit("/", 1)[1], sent, len(data))
        self.close_connection = True


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", port), Handler)
if cert:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
