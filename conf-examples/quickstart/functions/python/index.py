# A python3-runtime function: a WSGI callable (handler: index.app); no server
# to write, the runtime serves it.
import json


def app(environ, start_response):
    context = environ["fc.context"]
    body = json.dumps({
        "function": context.function.name,
        "runtime": "python3",
        "path": environ["PATH_INFO"],
        "requestId": context.request_id,
    }).encode() + b"\n"
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
