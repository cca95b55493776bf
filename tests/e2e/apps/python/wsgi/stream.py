# WSGI plumbing checks: streaming both ways, close(), write(), environ keys.
import json
import os
import time

CHUNK = 64 * 1024
closed = []


def _status():
    with open("/proc/self/status") as f:
        return {line.split(":")[0]: line.split(":")[1].strip() for line in f}


class Closing:
    def __init__(self, parts, tag):
        self.parts, self.tag = parts, tag

    def __iter__(self):
        return iter(self.parts)

    def close(self):
        closed.append(self.tag)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/upload":
        stream, total, biggest = environ["wsgi.input"], 0, 0
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            total += len(chunk)
            biggest = max(biggest, len(chunk))
        body = json.dumps({"bytes": total, "biggest_read": biggest}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/download":
        megabytes = int(environ["QUERY_STRING"].split("=")[1])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        block = b"x" * CHUNK
        return (block for _ in range(megabytes * 1024 * 1024 // CHUNK))
    if path == "/slow-stream":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def slowly():
            for i in range(3):
                yield b"tick %d\n" % i
                time.sleep(0.4)
        return slowly()
    if path == "/proc":
        status = _status()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"pid": os.getpid(), "VmHWM": status["VmHWM"], "VmRSS": status["VmRSS"]}).encode()]
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"by write() ")
        return [b"then returned"]
    if path == "/closing":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing([b"a", b"b"], environ["QUERY_STRING"])
    if path == "/closed":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(closed).encode()]
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"].split("=")[1]))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [os.environ["FC_INSTANCE_ID"].encode()]
    if path == "/fail":
        raise RuntimeError("the app failed")
    # /environ: what the server put in environ.
    ctx = environ["fc.context"]
    keys = {k: v for k, v in environ.items() if isinstance(v, str)}
    keys["fc.context.request_id"] = ctx.request_id
    keys["fc.context.function.name"] = ctx.function.name
    keys["wsgi.multithread"] = environ["wsgi.multithread"]
    keys["wsgi.input_terminated"] = environ.get("wsgi.input_terminated")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(keys).encode()]
