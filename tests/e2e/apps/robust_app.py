"""A custom-runtime instance for the robustness tests (standard library only).

Paths:
  /sleep?s=X   sleeps X seconds; answers {pid, max_inflight}
  /pid         answers {pid} at once
  /garbage     answers "ok" on a keep-alive connection, then, once the
               response is out, writes stray bytes on that idle connection
  /dribble     answers "ok" with a head written 7 bytes at a time, 5 ms
               apart (so the runner reads it in pieces), long headers included
With FORK_SERVER=1 the process the runner spawned only waits while a child
serves (like a bootstrap script or a pre-fork master); {leader} in the
answers is that waiting parent.  With IGNORE_TERM=1 it ignores SIGTERM.
"""
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PID = os.getpid()
lock = threading.Lock()
inflight = 0
max_inflight = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        sys.stderr.write("robust_app: " + (fmt % args) + "\n")

    def reply(self, payload):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def do_GET(self):
        global inflight, max_inflight
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/sleep":
            with lock:
                inflight += 1
                max_inflight = max(max_inflight, inflight)
            try:
                time.sleep(float(query.get("s", ["1"])[0]))
            finally:
                with lock:
                    inflight -= 1
            self.reply({"pid": PID, "leader": os.getppid(), "max_inflight": max_inflight})
        elif url.path == "/garbage":
            self.reply(b"ok")
            time.sleep(0.2)
            self.wfile.write(b"stray bytes after the response\r\n")
            self.wfile.flush()
        elif url.path == "/dribble":
            head = (b"HTTP/1.1 200 OK\r\nX-Dribbled-Long-Header-Name: " + b"v" * 40 +
                    b"\r\nX-Second: second value, longer than fifteen\r\nContent-Length: 2\r\n\r\n")
            for i in range(0, len(head), 7):
                self.wfile.write(head[i:i + 7])
                self.wfile.flush()
                time.sleep(0.005)
            self.wfile.write(b"ok")
            self.wfile.flush()
        else:
            self.reply({"pid": PID, "leader": os.getppid()})

    do_POST = do_GET


def main():
    global PID
    if os.environ.get("IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.environ.get("FORK_SERVER") == "1":
        child = os.fork()
        if child:
            os.waitpid(child, 0)
            return
        PID = os.getpid()
    port = int(os.environ["FC_SERVER_PORT"])
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
