"""A custom-runtime instance for the lifecycle hardening tests (standard library only).

Environment:
  STATE_DIR         where it records: starts.log ("pid time" per start),
                    peak-<pid> (the most requests it ever ran at once)
  CRASH_ON_REQUEST  "1": initializes fine, then exits on every request
Paths:
  POST /initialize  200
  /pid              {pid}
  /sleep?s=X        sleeps X seconds; {pid, peak}
  /upload           reads the body (Content-Length; less if the peer ends
                    it early); {pid, got}
  /stream?chunks=N&size=S&gap=G
                    N chunks of S bytes, G seconds apart, then "END\\n"
  /drop             closes the connection without answering
  /crash            the process exits at once (after it served others)
  /close-listener   answers, then stops listening (the process lives on)
"""
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

STATE_DIR = os.environ.get("STATE_DIR", "/tmp")
PID = os.getpid()
lock = threading.Lock()
inflight = 0
peak = 0
server = None
listener_closed = threading.Event()


def record(name, line):
    with open(os.path.join(STATE_DIR, name), "a") as f:
        f.write(line + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        sys.stderr.write("hardening_app: " + (fmt % args) + "\n")

    def leave(self):
        # Before the reply goes out: once the runner has the response it may
        # send the next request at once, and that one must not count this one.
        global inflight
        if getattr(self, "counted", False):
            self.counted = False
            with lock:
                inflight -= 1

    def reply(self, payload, status=200):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.leave()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def handle_any(self):
        global inflight, peak
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        arg = lambda name, default: query.get(name, [default])[0]
        if url.path == "/initialize":
            self.reply(b"")
            return
        if os.environ.get("CRASH_ON_REQUEST") == "1" or url.path == "/crash":
            os._exit(1)
        with lock:
            inflight += 1
            peak = max(peak, inflight)
            with open(os.path.join(STATE_DIR, "peak-%d" % PID), "w") as f:
                f.write(str(peak))
        self.counted = True
        try:
            if url.path == "/sleep":
                time.sleep(float(arg("s", "1")))
                self.reply({"pid": PID, "peak": peak})
            elif url.path == "/upload":
                want = int(self.headers.get("Content-Length", "0"))
                got = b""
                while len(got) < want:
                    piece = self.rfile.read1(want - len(got))
                    if not piece:
                        break  # the runner ended the body early
                    got += piece
                self.reply({"pid": PID, "got": len(got)})
            elif url.path == "/stream":
                chunks, size, gap = int(arg("chunks", "10")), int(arg("size", "1024")), float(arg("gap", "0.1"))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                block = b"x" * size
                for _ in range(chunks):
                    self.wfile.write(b"%x\r\n%s\r\n" % (size, block))
                    self.wfile.flush()
                    time.sleep(gap)
                self.wfile.write(b"4\r\nEND\n\r\n0\r\n\r\n")
                self.wfile.flush()
            elif url.path == "/drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif url.path == "/close-listener":
                self.reply({"pid": PID})
                listener_closed.set()
                threading.Thread(target=server.shutdown, daemon=True).start()
            else:
                self.reply({"pid": PID})
        finally:
            self.leave()

    do_GET = handle_any
    do_POST = handle_any


def main():
    global server
    record("starts.log", "%d %f" % (PID, time.time()))
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["FC_SERVER_PORT"])), Handler)
    server.serve_forever()
    server.server_close()
    # The listener is gone; the process is not.
    while listener_closed.is_set():
        time.sleep(1)


if __name__ == "__main__":
    main()
