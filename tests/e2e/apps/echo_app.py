"""A custom-runtime instance for the end-to-end tests: standard library only.

Listens on FC_SERVER_PORT (HTTP/1.1, keep-alive) and answers by path:
  /inspect...      JSON of what arrived: method, raw path, headers in order
                   (duplicates kept), body length; also X-Seen-Method and
                   X-Seen-Path headers, so HEAD can be checked too
  /echo...         the request body back, byte for byte
  /status/NNN      that status (no body for 204/304 and HEAD)
  /cookies         two Set-Cookie headers
  /sse             one event, 1 s pause, a second event (chunked, flushed)
  /slow-upload     reads the body, answers when its first byte arrived
  /invoke          (event functions) "event:" + the body
  /pid             this process's pid
"""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: without this, Nagle + delayed ACK
    # add ~40 ms to every response.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        sys.stderr.write("echo_app: " + (fmt % args) + "\n")

    def read_body(self, on_first_byte=None):
        """The request body, de-chunked; calls on_first_byte once."""
        parts = []
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunk = self.rfile.read(size)
                if on_first_byte and not parts:
                    on_first_byte()
                parts.append(chunk)
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left > 0:
                chunk = self.rfile.read1(min(left, 65536))
                if not chunk:
                    break
                if on_first_byte and not parts:
                    on_first_byte()
                parts.append(chunk)
                left -= len(chunk)
        return b"".join(parts)

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def handle_any(self):
        path = self.path
        if path.startswith("/inspect") or path.startswith("/fn/"):
            body = self.read_body()
            info = {
                "method": self.command,
                "path": path,
                "headers": [[k, v] for k, v in self.headers.raw_items()],
                "body_len": len(body),
                "pid": os.getpid(),
            }
            self.reply(200, json.dumps(info).encode(),
                       [("Content-Type", "application/json"),
                        ("X-Seen-Method", self.command),
                        ("X-Seen-Path", path)])
        elif path.startswith("/echo"):
            body = self.read_body()
            self.reply(200, body, [("Content-Type", "application/octet-stream")])
        elif path.startswith("/status/"):
            self.read_body()
            status = int(path.split("/")[2])
            self.reply(status, b"status %d\n" % status)
        elif path.startswith("/cookies"):
            self.reply(200, b"ok", [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")])
        elif path.startswith("/sse"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i, pause in ((1, 1.0), (2, 0)):
                event = b"data: event %d\n\n" % i
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
                time.sleep(pause)
            self.wfile.write(b"0\r\n\r\n")
        elif path.startswith("/slow-upload"):
            first = []
            body = self.read_body(lambda: first.append(time.time()))
            info = {"first_byte_at": first[0] if first else 0, "done_at": time.time(),
                    "body_len": len(body)}
            self.reply(200, json.dumps(info).encode(), [("Content-Type", "application/json")])
        elif path.startswith("/invoke"):
            body = self.read_body()
            self.reply(200, b"event:" + body, [("Content-Type", "application/octet-stream")])
        elif path.startswith("/pid"):
            self.read_body()
            self.reply(200, str(os.getpid()).encode())
        else:
            self.read_body()
            self.reply(404, b"no route\n")

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = handle_any


def main():
    port = int(os.environ.get("FC_SERVER_PORT", "9000"))
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
