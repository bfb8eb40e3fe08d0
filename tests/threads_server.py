"""A plain ASGI app under uvicorn whose routes call stubs the way FastAPI ``def`` routes do.

Run by ``tests/test_threads.py``: each request runs a synchronous function in the default thread
pool, and that function calls ``asyncio.run(stub.increment())``, with a loop of its own. The
runtime is opened in the lifespan, on the server's loop. Prints ``PORT <n>`` once listening.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Any

import uvicorn

import durable


class Counter(durable.DurableObject):
    """A counter."""

    async def increment(self) -> int:
        value: int = (await self.ctx.storage.get("n")) or 0
        await self.ctx.storage.put("n", value + 1)
        return value + 1

    async def count(self) -> int:
        return (await self.ctx.storage.get("n")) or 0


STATE: dict[str, Any] = {}


def sync_route(path: str) -> int:
    """What a FastAPI ``def`` route would do: run async code with asyncio.run in its thread."""
    stub = STATE["ns"].get_by_name("c")
    if path == "/count":
        return int(asyncio.run(stub.count()))
    return int(asyncio.run(stub.increment()))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                rt = durable.Runtime(path=sys.argv[1] if len(sys.argv) > 1 else None)
                await rt.__aenter__()
                STATE["rt"], STATE["ns"] = rt, rt.namespace(Counter)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await STATE["rt"].aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
    loop = asyncio.get_running_loop()
    value = await loop.run_in_executor(None, sync_route, scope["path"])
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(value).encode()})


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    # Keep-alive well beyond uvicorn's 5 s: on a loaded machine a pooled connection could sit idle
    # that long, uvicorn closed it as httpx reused it, and the request failed with ReadError.
    config = uvicorn.Config(app, lifespan="on", log_level="warning", timeout_keep_alive=120)
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


if __name__ == "__main__":
    main()
