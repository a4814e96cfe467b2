"""The dashboard web server: static pages, a JSON API and /metrics.

Standard library only (ThreadingHTTPServer). Files are served from a fixed
table of the package's static assets and runs are looked up by name in the
store, so no URL can reach an arbitrary path; URLs with `..`, backslashes or
NUL bytes are refused with 400 before any lookup.
"""

import json
import math
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from hvd_pretrain.telemetry import api, prom, scaling
from hvd_pretrain.telemetry.store import Refresher, RunStore
from hvd_pretrain.telemetry.system import SystemSampler

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "application/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8",
                 ".png": "image/png", ".svg": "image/svg+xml"}
PAGES = {"/": "index.html", "/compare": "compare.html"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def static_files():
    """name -> absolute path of every shipped asset (the only files the server can send)."""
    return {name: os.path.join(STATIC_DIR, name) for name in os.listdir(STATIC_DIR)
            if os.path.splitext(name)[1] in CONTENT_TYPES}


def unsafe_path(raw_path):
    path = unquote(raw_path)
    if "\\" in path or "\x00" in path:
        return True
    return any(part in ("..", ".") for part in path.split("/"))


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


class Handler(BaseHTTPRequestHandler):
    server_version = "hvd-monitor"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("hvd-monitor: %s - %s\n" % (self.address_string(), fmt % args))

    # ---- responses ------------------------------------------------------

    def _send(self, code, body, content_type, cache=False):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=300" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, code=200):
        try:
            body = json.dumps(obj, allow_nan=False, separators=(",", ":"))
        except ValueError:  # a NaN from a hand-edited plan.json or job.json: send null instead
            body = json.dumps(_finite(obj), allow_nan=False, separators=(",", ":"))
        self._send(code, body.encode(), "application/json")

    def _error(self, code, message):
        self._json({"error": message}, code)

    def _static(self, name):
        path = self.server.static.get(name)
        if path is None:
            return self._error(404, "no such file")
        with open(path, "rb") as f:
            body = f.read()
        self._send(200, body, CONTENT_TYPES[os.path.splitext(name)[1]], cache=not name.endswith(".html"))

    # ---- routing --------------------------------------------------------

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # never let one bad run take the server down
            try:
                self._error(500, "%s: %s" % (type(e).__name__, e))
            except OSError:
                pass

    def _route(self):
        if unsafe_path(self.path):
            return self._error(400, "refused: path with '..', '.', backslash or NUL")
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        arg = lambda key, default=None: query.get(key, [default])[0]  # noqa: E731
        store = self.server.store
        if path in PAGES:
            return self._static(PAGES[path])
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        if path == "/metrics":
            body, ctype = prom.exposition(store)
            return self._send(200, body, ctype)
        if path == "/healthz":
            return self._send(200, b"ok\n", "text/plain")
        if path == "/api/runs":
            return self._json(api.overview(store))
        if path == "/api/system":
            return self._json(self.server.system.payload())
        if path == "/api/compare":
            names = [n for n in (arg("runs") or "").split(",") if n]
            return self._json(api.compare(store, names, arg("metric", "examples_per_sec"), arg("x", "step"),
                                          arg("points", api.DEFAULT_POINTS)))
        if path == "/api/scaling":
            names = [n for n in (arg("runs") or "").split(",") if n]
            runs = [store.get(n) for n in names] if names else store.runs()
            return self._json({"rows": scaling.scaling_rows([r for r in runs if r is not None])})
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "run":
            if store.get(parts[1]) is None:
                return self._error(404, "no run named %r" % parts[1])
            return self._static("run.html")
        if 3 <= len(parts) <= 4 and parts[:2] == ["api", "run"]:
            run = store.get(parts[2])
            if run is None:
                return self._error(404, "no run named %r" % parts[2])
            what = parts[3] if len(parts) > 3 else ""
            if what == "":
                return self._json(api.run_detail(run))
            if what == "series":
                version = arg("version")
                if version is not None and version == str(run.version) and arg("t0") is None:
                    return self._json({"unchanged": True, "version": run.version})
                keys = [k for k in (arg("keys") or "").split(",") if k]
                return self._json(api.run_series(run, keys or None, arg("points", api.DEFAULT_POINTS),
                                                 arg("t0"), arg("t1")))
            if what == "ranks":
                return self._json(api.ranks_view(run, arg("points", 600)))
        return self._error(404, "not found")


class MonitorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, store, verbose=False, refresh_interval=2.0):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        self.store = store
        self.verbose = verbose
        self.static = static_files()
        self.system = SystemSampler()
        self.refresher = Refresher(store, refresh_interval)

    def start_background(self):
        self.system.start()
        self.refresher.start()

    def server_close(self):
        self.refresher.stop()
        self.system.stop()
        super().server_close()


def serve(runs_dir, host="127.0.0.1", port=8265, paths=(), verbose=False, refresh_interval=2.0,
          ready=None, out=sys.stdout):
    """Run the dashboard until interrupted. `ready(server)` is called once it listens."""
    store = RunStore(runs_dir, paths)
    if host not in LOOPBACK:
        print("hvd-monitor: WARNING: listening on %s: the dashboard has no authentication; anyone who can "
              "reach this port can read every run's metrics and configuration." % host, file=sys.stderr)
    server = MonitorServer((host, port), store, verbose=verbose, refresh_interval=refresh_interval)
    server.start_background()
    shown_host = "[%s]" % host if ":" in host else host
    print("hvd-monitor: serving %s on http://%s:%d/ (metrics: /metrics)"
          % (runs_dir or ", ".join(paths), shown_host, server.server_address[1]), file=out, flush=True)
    if ready is not None:
        ready(server)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def start_in_thread(runs_dir, host="127.0.0.1", port=0, refresh_interval=0.5):
    """A server on a background thread (for tests and benchmarks). Call .shutdown() when done."""
    store = RunStore(runs_dir, min_interval=0.0)
    store.refresh(force=True)
    server = MonitorServer((host, port), store, refresh_interval=refresh_interval)
    server.start_background()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    return server
