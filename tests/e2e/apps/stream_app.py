"""A custom-runtime instance for memory tests and benchmarks: standard library
only, asyncio, so one process holds hundreds of open streams.

Listens on FC_SERVER_PORT (HTTP/1.1, keep-alive) and answers by path:
  /discard         reads the body (Content-Length or chunked) and drops it;
                   answers with the byte count
  /bytes?n=N       N bytes of zeros (Content-Length), written 64 KiB at a time
  /sse?interval=S  a Server-Sent Events stream, one event every S seconds
                   (default 1) until the client goes away
  /print?lines=N   writes N lines of 100 bytes on stdout, then answers "printed"
Anything else gets 404.
"""
import asyncio
import os
import sys
from urllib.parse import parse_qs, urlsplit

PIECE = 64 * 1024
ZEROS = bytes(PIECE)


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return method, target, headers


async def discard_body(reader, headers):
    total = 0
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            left = size
            while left > 0:
                data = await reader.read(min(left, PIECE))
                if not data:
                    raise ConnectionError("body cut short")
                left -= len(data)
            await reader.readexactly(2)
            total += size
            if size == 0:
                return total
    left = int(headers.get("content-length", "0"))
    while left > 0:
        data = await reader.read(min(left, PIECE))
        if not data:
            raise ConnectionError("body cut short")
        left -= len(data)
        total += len(data)
    return total


def reply(writer, status, body):
    writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n%s"
                 % (status, len(body), body))


async def serve(reader, writer):
    try:
        while True:
            method, target, headers = await read_head(reader)
            url = urlsplit(target)
            query = parse_qs(url.query)
            if url.path == "/discard":
                total = await discard_body(reader, headers)
                reply(writer, 200, b"%d" % total)
            elif url.path == "/bytes":
                await discard_body(reader, headers)
                left = int(query.get("n", ["0"])[0])
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % left)
                while left > 0:
                    piece = ZEROS if left >= PIECE else ZEROS[:left]
                    writer.write(piece)
                    left -= len(piece)
                    await writer.drain()
            elif url.path == "/sse":
                await discard_body(reader, headers)
                interval = float(query.get("interval", ["1"])[0])
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
                n = 0
                while True:
                    event = b"data: tick %d\n\n" % n
                    writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                    await writer.drain()
                    n += 1
                    await asyncio.sleep(interval)
            elif url.path == "/print":
                await discard_body(reader, headers)
                lines = int(query.get("lines", ["0"])[0])
                sys.stdout.write(("%s\n" % ("x" * 99)) * lines)
                sys.stdout.flush()
                reply(writer, 200, b"printed")
            else:
                await discard_body(reader, headers)
                reply(writer, 404, b"no such path")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    port = int(os.environ.get("FC_SERVER_PORT", "9000"))
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=4096, limit=PIECE)
    sys.stderr.write("stream_app: listening on %d\n" % port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
