# A WSGI app under wsgiref.validate.validator, with every warning an error:
# any complaint about the server's side of PEP 3333 fails the request (500)
# and lands in the log.
import warnings
from wsgiref.validate import validator

warnings.simplefilter("error")


def read_all(stream):
    chunks = []
    while True:
        chunk = stream.read(4096)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/generator":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"part %d\n" % i for i in range(5))
    if path == "/echo":
        body = read_all(environ["wsgi.input"])
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/lines":
        lines = environ["wsgi.input"].readlines()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d lines\n" % len(lines)]
    body = b"hello " + environ["REQUEST_METHOD"].encode() + b"\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


app = validator(_app)
