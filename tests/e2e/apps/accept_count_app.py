"""One connection at a time (http.server's HTTPServer, no threads), and the
number of connections it has accepted so far in every answer: the cold-start
tests see whether the runner's readiness probe was a connection of its own."""
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

accepted = 0


class Counting(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        global accepted
        accepted += 1
        super().setup()

    def do_GET(self):
        body = b"connections %d\n" % accepted
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


HTTPServer(("127.0.0.1", int(os.environ["FC_SERVER_PORT"])), Counting).serve_forever()
