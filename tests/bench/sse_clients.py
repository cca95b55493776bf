"""Holds N Server-Sent Events streams open against URL and waits until every
one has seen EVENTS events; then prints "ready" and keeps reading for HOLD
seconds (or until killed), so the caller can measure the processes in
between.
  python3 sse_clients.py HOST PORT PATH N EVENTS HOLD
"""
import asyncio
import sys


async def stream(host, port, path, events, seen, ready):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET %s HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n" % path.encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("answer: %r" % head[:80])
    count = 0
    while True:
        data = await reader.read(4096)
        if not data:
            raise RuntimeError("stream ended after %d events" % count)
        count += data.count(b"data: ")
        if count >= events:
            if not getattr(writer, "_counted", False):
                writer._counted = True
                seen[0] += 1
                if seen[0] == seen[1]:
                    ready.set()


async def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    n, events, hold = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    seen = [0, n]
    ready = asyncio.Event()
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(stream(host, port, path, events, seen, ready)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait([waiter, *tasks], timeout=120, return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        for t in done:
            if t.exception():
                print("failed: %s" % t.exception(), flush=True)
                sys.exit(1)
        print("failed: only %d of %d streams saw %d events" % (seen[0], n, events), flush=True)
        sys.exit(1)
    print("ready", flush=True)
    await asyncio.sleep(hold)
    for t in tasks:
        t.cancel()


if __name__ == "__main__":
    asyncio.run(main())
