"""A custom-runtime function with nothing but Python's standard library."""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = json.dumps({
            "message": os.environ.get("GREETING", "Hello"),
            "path": self.path,
            "function": os.environ.get("FC_FUNCTION_NAME"),
            "instance": os.environ.get("FC_INSTANCE_ID"),
            "requestId": self.headers.get("x-fc-request-id"),
        }).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ["FC_SERVER_PORT"])
    ThreadingHTTPServer(("127.0.0.1", port), Hello).serve_forever()
