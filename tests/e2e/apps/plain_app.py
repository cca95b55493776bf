"""The simplest custom runtime a user writes with Python's standard library:
http.server as it comes (Nagle on, head and body written separately)."""
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Plain(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"plain\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("127.0.0.1", int(os.environ["FC_SERVER_PORT"])), Plain).serve_forever()
