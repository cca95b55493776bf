#!/usr/bin/python3
"""A stand-in for fc-runner that speaks the fc wire protocol v1 (docs/protocol.md).

For testing the nginx module alone: no instances, the function name picks a
canned behaviour.

    fake_runner.py unix:/tmp/x/fc.sock      (or 127.0.0.1:9100)

Functions:
  echo      RESPONSE 200, the body streamed back frame by frame as it arrives;
            Content-Length when the request had one.  X-Echo-Method/-Uri/
            -Version/-Content-Length headers tell what arrived.
  info      reads the whole body, answers the REQUEST map as JSON (body_len,
            body_sha256 added); ?status=N sets the status.
  status    ?code=N: that status, body "status N\\n" (nothing for 204/304/HEAD,
            which still get the empty DATA END_STREAM frame).
  cookies   two Set-Cookie headers.
  header    ?name=N&value=V (percent-decoded): that one header, body "ok\n";
            name=..&value=.. repeated: those headers, in that order.
  split     a RESPONSE + body written one byte at a time.
  sse       "data: one", 1 s pause, "data: two".
  abort     RESPONSE, some DATA, then ERROR (the exchange is aborted).
  garbage   an invalid frame header.
  big       a 1 MiB + 3 body in several frames, ?len=N for another size.
  stats     JSON {"connections": N, "exchanges": M} since start.
  anything else: ERROR 404 FunctionNotFound (the body is still read, so the
            connection stays reusable).

cold_start is true on the first exchange of each function, instance "fake-<fn>-1".
"""

import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse

import msgpack

REQUEST, RESPONSE, DATA, ERROR = 1, 2, 3, 4
END_STREAM = 1
MAX_PAYLOAD = 1024 * 1024
MAX_META = 64 * 1024

lock = threading.Lock()
stats = {"connections": 0, "exchanges": 0}
seen_functions = set()


def frame(ftype, payload=b"", flags=0):
    return struct.pack(">BBHI", 1, ftype, flags, len(payload)) + payload


def read_exact(conn, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def read_frame(conn):
    version, ftype, flags, length = struct.unpack(">BBHI", read_exact(conn, 8))
    if version != 1:
        raise ValueError("bad version %d" % version)
    if length > (MAX_PAYLOAD if ftype == DATA else MAX_META):
        raise ValueError("frame type %d too long: %d" % (ftype, length))
    return ftype, flags, read_exact(conn, length) if length else b""


def body_frames(conn):
    """Yields the request's DATA payloads up to END_STREAM."""
    while True:
        ftype, flags, payload = read_frame(conn)
        if ftype != DATA:
            raise ValueError("expected DATA, got %d" % ftype)
        yield payload
        if flags & END_STREAM:
            return


def response(status, headers, fn):
    with lock:
        cold = fn not in seen_functions
        seen_functions.add(fn)
    return frame(RESPONSE, msgpack.packb({
        "status": status, "headers": headers,
        "cold_start": cold, "instance": "fake-%s-1" % fn}))


def error(status, code, message):
    return frame(ERROR, msgpack.packb(
        {"status": status, "code": code, "message": message}), END_STREAM)


def send_body(conn, data):
    """The last frame carries END_STREAM itself: a client that has all of
    Content-Length may close at once, before a separate empty END_STREAM
    frame would reach nginx, and the connection would be lost for reuse."""
    chunks = [data[i:i + MAX_PAYLOAD] for i in range(0, len(data), MAX_PAYLOAD)]
    for chunk in chunks[:-1]:
        conn.sendall(frame(DATA, chunk))
    conn.sendall(frame(DATA, chunks[-1] if chunks else b"", END_STREAM))


def exchange(conn, req):
    fn = req["function"]
    uri = req["uri"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
    method = req["method"]
    no_body = method == "HEAD"

    if fn == "echo":
        headers = [["Content-Type", "application/octet-stream"],
                   ["X-Echo-Method", method], ["X-Echo-Uri", uri],
                   ["X-Echo-Version", req.get("version", "")],
                   ["X-Echo-Content-Length", str(req.get("content_length"))]]
        if req.get("content_length", -1) >= 0:
            headers.append(["Content-Length", str(req["content_length"])])
        conn.sendall(response(200, headers, fn))
        for chunk in body_frames(conn):
            if chunk and not no_body:
                conn.sendall(frame(DATA, chunk))
        conn.sendall(frame(DATA, b"", END_STREAM))
        return

    if fn == "info":
        h = hashlib.sha256()
        n = 0
        for chunk in body_frames(conn):
            h.update(chunk)
            n += len(chunk)
        info = dict(req)
        info["body_len"] = n
        info["body_sha256"] = h.hexdigest()
        body = json.dumps(info).encode() + b"\n"
        status = int(query.get("status", ["200"])[0])
        conn.sendall(response(status, [["Content-Type", "application/json"],
                                       ["Content-Length", str(len(body))]], fn))
        send_body(conn, b"" if no_body else body)
        return

    for _ in body_frames(conn):
        pass

    if fn == "status":
        code = int(query.get("code", ["200"])[0])
        body = b"" if code in (204, 304) or no_body else b"status %d\n" % code
        headers = [["Content-Type", "text/plain"]]
        if code not in (204, 304):
            headers.append(["Content-Length", str(len("status %d\n" % code))])
        conn.sendall(response(code, headers, fn))
        send_body(conn, body)
    elif fn == "cookies":
        conn.sendall(response(200, [["Set-Cookie", "a=1; Path=/"],
                                    ["Set-Cookie", "b=2; Path=/"],
                                    ["Content-Type", "text/plain"]], fn))
        send_body(conn, b"" if no_body else b"cookies\n")
    elif fn == "header":
        pairs = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query,
                                      keep_blank_values=True)
        names = pairs.get("name", ["X-Test"])
        values = pairs.get("value", [""] * len(names))
        conn.sendall(response(200, [list(h) for h in zip(names, values)], fn))
        send_body(conn, b"" if no_body else b"ok\n")
    elif fn == "split":
        data = response(200, [["Content-Type", "text/plain"],
                              ["X-Split", "yes"]], fn)
        data += frame(DATA, b"hello, ") + frame(DATA, b"split world\n")
        data += frame(DATA, b"", END_STREAM)
        for i in range(len(data)):
            conn.sendall(data[i:i + 1])
            time.sleep(0.001)
    elif fn == "sse":
        conn.sendall(response(200, [["Content-Type", "text/event-stream"]], fn))
        conn.sendall(frame(DATA, b"data: one\n\n"))
        time.sleep(1)
        conn.sendall(frame(DATA, b"data: two\n\n"))
        conn.sendall(frame(DATA, b"", END_STREAM))
    elif fn == "abort":
        conn.sendall(response(200, [["Content-Type", "text/plain"]], fn))
        conn.sendall(frame(DATA, b"partial "))
        time.sleep(0.1)
        conn.sendall(error(502, "InstanceCrashed", "instance died"))
    elif fn == "garbage":
        conn.sendall(b"\x07\x99garbage!")
        raise EOFError
    elif fn == "big":
        n = int(query.get("len", [str(MAX_PAYLOAD + 3)])[0])
        body = bytes(i % 251 for i in range(n))
        conn.sendall(response(200, [["Content-Length", str(n)]], fn))
        send_body(conn, b"" if no_body else body)
    elif fn == "stats":
        with lock:
            body = json.dumps(stats).encode() + b"\n"
        conn.sendall(response(200, [["Content-Type", "application/json"]], fn))
        send_body(conn, b"" if no_body else body)
    else:
        conn.sendall(error(404, "FunctionNotFound",
                           'function "%s" not found' % fn))


def serve(conn):
    with lock:
        stats["connections"] += 1
    try:
        while True:
            try:
                ftype, flags, payload = read_frame(conn)
            except EOFError:
                return
            if ftype != REQUEST:
                raise ValueError("expected REQUEST, got %d" % ftype)
            with lock:
                stats["exchanges"] += 1
            exchange(conn, msgpack.unpackb(payload, raw=False))
    except (EOFError, ConnectionError, ValueError) as e:
        if not isinstance(e, EOFError):
            print("fake_runner: %s" % e, file=sys.stderr)
    finally:
        conn.close()


def main():
    addr = sys.argv[1] if len(sys.argv) > 1 else "unix:/tmp/fc-fake.sock"
    if addr.startswith("unix:"):
        path = addr[5:]
        if os.path.exists(path):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
    else:
        host, port = addr.rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
    sock.listen(128)
    print("fake_runner: listening on %s" % addr, file=sys.stderr, flush=True)
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
