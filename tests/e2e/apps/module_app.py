"""A custom-runtime instance for the module hardening tests (module_hardening_test.cc): standard library only.

Threaded HTTP/1.1 keep-alive server on FC_SERVER_PORT:
  /echo...          the request body back (X-Pid tells which process answered)
  /sleep/S          sleeps S seconds, then "slept"
  /header/N         a response header X-Big of N bytes
  /initialize       the initializer: 500 when INIT_FAIL is set
  anything else     this process's pid
"""
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def reply(self, status, body, headers=()):
        self.send_response(status)
        self.send_header("X-Pid", str(os.getpid()))
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        body = self.read_body()
        path = self.path
        if path.startswith("/echo"):
            self.reply(200, body)
        elif path.startswith("/sleep/"):
            time.sleep(float(path.split("/")[2]))
            self.reply(200, b"slept")
        elif path.startswith("/header/"):
            self.reply(200, b"big", [("X-Big", "h" * int(path.split("/")[2]))])
        elif path.startswith("/initialize"):
            self.reply(500 if os.environ.get("INIT_FAIL") else 200, b"init")
        else:
            self.reply(200, str(os.getpid()).encode())

    do_GET = do_HEAD = do_POST = do_PUT = handle_any


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 1024
ThreadingHTTPServer(("127.0.0.1", int(os.environ["FC_SERVER_PORT"])), Handler).serve_forever()
