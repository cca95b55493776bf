"""An event function as a custom runtime: POST /invoke with raw bytes in,
raw bytes out (here, a word count as JSON)."""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Invoke(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        event = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        words = event.decode("utf-8", "replace").split()
        counts = {}
        for w in words:
            counts[w] = counts.get(w, 0) + 1
        body = json.dumps({"words": len(words), "counts": counts}).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ["FC_SERVER_PORT"])
    ThreadingHTTPServer(("127.0.0.1", port), Invoke).serve_forever()
