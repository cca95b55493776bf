"""A custom-runtime instance for the lifecycle tests (standard library only).

Behaviour is chosen by environment variables from the function's config:
  INIT_SLEEP   seconds POST /initialize takes (default 0)
  INIT_FAIL    how POST /initialize fails: "1" answers 500 "init exploded",
               "404" answers 200 with x-fc-status: 404 and that text,
               "crash" exits
  LAZY_SLEEP   seconds the first handler call takes (lazy initialization)
  FIXED_PORT   listen on this port instead of $FC_SERVER_PORT (caPort apps)
  STATE_DIR    where it records what happened, for the test to read:
                 starts.log   one "pid time" line per process start
                 prestop.log  one "pid time" line per GET /pre-stop
                 initialize.log  the headers of each POST /initialize (JSON)
                 busy-<pid>   exists while a /sleep call runs
Paths:
  /sleep?s=X   sleeps X seconds; answers {pid, max_inflight}
  /fast, /pid  answers {pid} at once
  /invoke      event: echoes; "fail" as the event answers x-fc-status: 404
  /alloc?mb=N  allocates N MiB and holds it while answering
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

STATE_DIR = os.environ.get("STATE_DIR", "/tmp")
PID = os.getpid()
lock = threading.Lock()
inflight = 0
max_inflight = 0
lazy_done = False


def record(name, line):
    with open(os.path.join(STATE_DIR, name), "a") as f:
        f.write(line + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: without this, Nagle + delayed ACK
    # add ~40 ms to every response.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        sys.stderr.write("lifecycle_app: " + (fmt % args) + "\n")

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def reply(self, status, payload, headers=()):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def lazy_init(self):
        global lazy_done
        with lock:
            if lazy_done:
                return
            time.sleep(float(os.environ.get("LAZY_SLEEP", "0")))
            lazy_done = True

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path == "/initialize":
            self.body()
            record("initialize.log", json.dumps([[k.lower(), v] for k, v in self.headers.items()]))
            time.sleep(float(os.environ.get("INIT_SLEEP", "0")))
            fail = os.environ.get("INIT_FAIL")
            if fail == "1":
                self.reply(500, b"init exploded")
            elif fail == "404":
                self.reply(200, b"init exploded", [("x-fc-status", "404")])
            elif fail == "crash":
                os._exit(3)
            else:
                self.reply(200, b"")
            return
        if url.path == "/invoke":
            event = self.body()
            if event == b"fail":
                self.reply(200, b"handler failed: fail", [("x-fc-status", "404")])
            else:
                self.reply(200, b"ok:" + event)
            return
        self.do_GET()

    def do_GET(self):
        global inflight, max_inflight
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/pre-stop":
            record("prestop.log", "%d %f" % (PID, time.time()))
            self.reply(200, b"")
            return
        self.lazy_init()
        if url.path == "/sleep":
            busy = os.path.join(STATE_DIR, "busy-%d" % PID)
            with lock:
                inflight += 1
                max_inflight = max(max_inflight, inflight)
                if inflight == 1:
                    open(busy, "w").close()
            try:
                time.sleep(float(query.get("s", ["1"])[0]))
            finally:
                with lock:
                    inflight -= 1
                    if inflight == 0:
                        os.unlink(busy)
            self.reply(200, {"pid": PID, "max_inflight": max_inflight})
        elif url.path == "/alloc":
            hold = bytearray(int(query.get("mb", ["1"])[0]) << 20)
            for i in range(0, len(hold), 4096):
                hold[i] = 1
            self.reply(200, {"pid": PID, "allocated": len(hold)})
        else:
            self.reply(200, {"pid": PID})


def main():
    record("starts.log", "%d %f" % (PID, time.time()))
    port = int(os.environ.get("FIXED_PORT") or os.environ["FC_SERVER_PORT"])
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
