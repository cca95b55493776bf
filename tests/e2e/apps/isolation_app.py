"""An instance that tries, as an attacker would, to reach what is not its own
(tests/e2e/isolation_test.cc).  Each GET answers what happened, as JSON.

  /read?path=P        read a file: {"ok": true, "bytes": N} or {"ok": false, "error": "ENOENT ..."}
  /kill?pid=N         send SIGKILL to a pid
  /connect?port=N     TCP connect to 127.0.0.1:N
  /whoami             uid, gid, pid, NoNewPrivs, instance id, writability of /tmp and the code dir
  /tmp-write?name=X   create /tmp/X;  /tmp-list: the names in /tmp
  /write?path=P       create a file at P
  /ping               "pong"
  /forkbomb?seconds=S every process forks as fast as it can until S seconds passed;
                      the request never gets an answer (the function's timeout ends it)
  /open-files?hold=S  open /dev/null until EMFILE, answer {"opened": N, "error": "EMFILE ..."},
                      close them S seconds later (the instance then serves again)
  /fill-tmp           write /tmp/fill in 1 MiB steps until ENOSPC: {"written": BYTES, "error": "ENOSPC ..."}
"""
import errno
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def failure(e):
    code = errno.errorcode.get(e.errno, str(e.errno)) if isinstance(e, OSError) and e.errno else type(e).__name__
    return {"ok": False, "error": "%s %s" % (code, e)}


def attempt(fn):
    try:
        result = fn()
        out = {"ok": True}
        if result is not None:
            out.update(result)
        return out
    except Exception as e:  # noqa: BLE001 - every failure is the answer
        return failure(e)


def read(path):
    with open(path, "rb") as f:
        return {"bytes": len(f.read())}


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.close()


def create(path):
    with open(path, "w") as f:
        f.write("x")


def status_field(name):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return None


def fork_bomb(seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if os.fork() == 0:
                continue  # the child bombs too
        except OSError:
            pass  # EAGAIN at the limit: try again


def open_files_until_emfile(hold):
    files = []
    error = None
    while error is None:
        try:
            files.append(os.open("/dev/null", os.O_RDONLY))
        except OSError as e:
            error = failure(e)["error"]
    def close_later():
        time.sleep(hold)
        for fd in files:
            os.close(fd)
    threading.Thread(target=close_later, daemon=True).start()
    return {"opened": len(files), "error": error}


def fill_tmp():
    written = 0
    chunk = b"x" * (1 << 20)
    try:
        with open("/tmp/fill", "wb", buffering=0) as f:
            while True:
                written += f.write(chunk)
    except OSError as e:
        return {"written": written, "error": failure(e)["error"]}
    return {"written": written, "error": None}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/read":
            self.reply(attempt(lambda: read(q["path"])))
        elif url.path == "/kill":
            self.reply(attempt(lambda: os.kill(int(q["pid"]), signal.SIGKILL)))
        elif url.path == "/connect":
            self.reply(attempt(lambda: connect(int(q["port"]))))
        elif url.path == "/write":
            self.reply(attempt(lambda: create(q["path"])))
        elif url.path == "/tmp-write":
            self.reply(attempt(lambda: create("/tmp/" + q["name"])))
        elif url.path == "/tmp-list":
            self.reply({"names": sorted(os.listdir("/tmp"))})
        elif url.path == "/whoami":
            self.reply({
                "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
                "pid": os.getpid(), "instance": os.environ.get("FC_INSTANCE_ID"),
                "no_new_privs": status_field("NoNewPrivs"),
                "cwd": os.getcwd(),
                "tmp": attempt(lambda: create("/tmp/.probe")),
                "code": attempt(lambda: create(os.path.join(os.getcwd(), ".probe"))),
                "slash_code": attempt(lambda: read("/code/isolation_app.py")),
                "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
                "nofile": __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE),
                "nproc": __import__("resource").getrlimit(__import__("resource").RLIMIT_NPROC),
            })
        elif url.path == "/ping":
            body = b"pong"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif url.path == "/open-files":
            self.reply(open_files_until_emfile(float(q.get("hold", "1"))))
        elif url.path == "/fill-tmp":
            self.reply(fill_tmp())
        elif url.path == "/forkbomb":
            fork_bomb(float(q.get("seconds", "30")))
            os._exit(0)
        else:
            self.reply({"error": "unknown path"}, 404)


ThreadingHTTPServer(("127.0.0.1", int(os.environ["FC_SERVER_PORT"])), Handler).serve_forever()
