"""A custom-runtime instance for the reload tests (standard library only).

The tests copy it into a code directory of their own, so that editing a file
there is a code change.
  CONFIG_TAG   echoed as "config": which config version started the instance
  version.txt  beside this file, read at start, echoed as "code"
  INIT_SLEEP   seconds POST /initialize takes (default 0)
  INIT_FAIL    "1": POST /initialize answers 500 "init exploded"
  STATE_DIR    prestop.log gets one "pid config code" line per GET /pre-stop
Paths:
  /whoami      {pid, instance, config, code}
  /sleep?s=X   the same after X seconds
"""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "version.txt")) as f:
    CODE = f.read().strip()
CONFIG = os.environ.get("CONFIG_TAG", "")
STATE_DIR = os.environ.get("STATE_DIR", "/tmp")
WHO = {"pid": os.getpid(), "instance": os.environ.get("FC_INSTANCE_ID", ""), "config": CONFIG, "code": CODE}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, payload):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        if n:
            self.rfile.read(n)
        if urlsplit(self.path).path == "/initialize":
            time.sleep(float(os.environ.get("INIT_SLEEP", "0")))
            if os.environ.get("INIT_FAIL") == "1":
                self.reply(500, b"init exploded")
                return
            self.reply(200, b"")
            return
        self.reply(200, WHO)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/pre-stop":
            with open(os.path.join(STATE_DIR, "prestop.log"), "a") as f:
                f.write(f"{os.getpid()} {CONFIG} {CODE}\n")
            self.reply(200, b"")
            return
        if url.path == "/sleep":
            time.sleep(float(parse_qs(url.query).get("s", ["0"])[0]))
        self.reply(200, WHO)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


sys.stderr.write(f"reload_app: pid {os.getpid()} config {CONFIG} code {CODE}\n")
Server(("127.0.0.1", int(os.environ["FC_SERVER_PORT"])), Handler).serve_forever()
