"""Started by a shell that forks it at once (`sh -c "python3 prefork_app.py & wait"`),
like a pre-fork server's master and workers: answers with the memory cgroup
of itself and of its parent, so a test can see both are under memorySize."""
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


def memory_cgroup(pid):
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controllers in ("memory", ""):
                return path
    return ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self):
        body = json.dumps({"self": memory_cgroup(os.getpid()),
                           "parent": memory_cgroup(os.getppid())}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("127.0.0.1", int(os.environ["FC_SERVER_PORT"])), Handler).serve_forever()
