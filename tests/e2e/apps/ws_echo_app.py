"""A WebSocket echo server on Debian's python3-websockets, as an FC custom
runtime: every message comes back as it was sent; the text "pid" is answered
with the instance's pid and "close" makes the server close.  A plain GET of
/pid (no upgrade) answers the pid too, so a test can see which instance
served the next request."""
import asyncio
import http
import os

import websockets


async def echo(ws, path=None):
    async for message in ws:
        if message == "pid":
            await ws.send(str(os.getpid()))
        elif message == "close":
            await ws.close(code=1000, reason="asked to")
            return
        else:
            await ws.send(message)


async def plain_http(path, request_headers):
    if path.startswith("/pid"):
        body = str(os.getpid()).encode()
        return http.HTTPStatus.OK, [("Content-Type", "text/plain"),
                                    ("Content-Length", str(len(body)))], body
    return None  # the WebSocket handshake goes on


async def main():
    async with websockets.serve(echo, "127.0.0.1", int(os.environ["FC_SERVER_PORT"]),
                                process_request=plain_http, max_size=4 << 20,
                                ping_interval=None, compression=None):
        await asyncio.Future()


asyncio.run(main())
