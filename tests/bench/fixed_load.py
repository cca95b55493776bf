"""Sends exactly N keep-alive GET requests over C connections and checks that
every answer is a 200: `fixed_load.py PORT PATH N C [BODY_BYTES]`; with
BODY_BYTES, POSTs of that many bytes instead (the event functions' shape).
The instruction counts of `make bench` divide by N, so the count must be
exact (wrk's is not)."""
import selectors
import socket
import sys

port, path, total, conns = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
body_bytes = int(sys.argv[5]) if len(sys.argv) > 5 else None
if body_bytes is None:
    request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: fixed_load\r\n\r\n" % path).encode()
else:
    request = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: fixed_load\r\n"
               "Content-Length: %d\r\n\r\n" % (path, body_bytes)).encode() + b"x" * body_bytes


def response_end(buf):
    """Length of the first whole response in buf, or 0 when it is not whole yet."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return 0
    head = buf[:head_end].decode("latin-1").lower()
    if not head.startswith("http/1.1 200"):
        sys.exit("fixed_load: %s answered %r" % (path, head.split("\r\n")[0]))
    body = head_end + 4
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name == "content-length":
            end = body + int(value)
            return end if len(buf) >= end else 0
    last = buf.find(b"\r\n0\r\n\r\n", body - 2)  # chunked: the last chunk
    return last + 7 if last >= 0 else 0


sel = selectors.DefaultSelector()
sent = done = 0
for _ in range(min(conns, total)):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(request)
    sent += 1
    sel.register(s, selectors.EVENT_READ, bytearray())
while done < total:
    for key, _ in sel.select(timeout=30) or sys.exit("fixed_load: no answer in 30 s"):
        s, buf = key.fileobj, key.data
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("fixed_load: connection closed after %d answers" % done)
        buf += chunk
        end = response_end(buf)
        if end:
            del buf[:end]
            done += 1
            if sent < total:
                s.sendall(request)
                sent += 1
for key in list(sel.get_map().values()):
    key.fileobj.close()
print(done)
