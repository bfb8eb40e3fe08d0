"""Build a counter: Cloudflare's Durable Objects example, in Python.

A stateless Worker reads the object name from ``?name=``, and each ``Counter`` object keeps
its own count in storage. The object is the reference ``durable.Counter`` (durable/_counter.py):
its ``fetch`` answers ``/increment``, ``/decrement`` and ``/`` with the count, and it also offers
RPC (``increment``, ``decrement``, ``get_counter_value``). Run it with either of::

    python examples/counter.py [--host H] [--port N] [--persist DIR | --in-memory]
    durable serve examples/counter.py

then visit http://127.0.0.1:8787/increment?name=A
"""

from __future__ import annotations

import sys
from urllib.parse import parse_qs, urlsplit

import durable
from durable import Counter, Request, Response


class Worker(durable.WorkerEntrypoint):
    """The stateless front: routes each request to the counter named by ``?name=``."""

    async def fetch(self, request: Request) -> Response:
        # Like JavaScript's url.searchParams.get("name"): the first value, "" counts as absent.
        query = parse_qs(urlsplit(request.url).query, keep_blank_values=True)
        name = query.get("name", [""])[0]
        if not name:
            return Response(
                "Select a Durable Object to contact by using the `name` URL query string parameter. e.g. ?name=A"
            )

        # Every unique ID refers to an individual instance of the Counter class that has its
        # own state. id_from_name() always returns the same ID when given the same string
        # (and called on the same class), but never the same ID for two different strings.
        stub = self.env.COUNTER.get(self.env.COUNTER.id_from_name(name))

        # Send a request to the Durable Object, then await its response.
        resp = await stub.fetch(request.url)
        count = await resp.text()
        return Response(f"Durable Object '{name}' count: {count}")


# The Durable Object is durable.Counter, the seed's counter shipped in the package; subclass it
# to add methods (see docs/http.md).
# What `durable serve` binds: the Worker reaches the Counter namespace as self.env.COUNTER.
bindings = {"COUNTER": Counter}


if __name__ == "__main__":
    from durable.__main__ import serve_file

    sys.exit(serve_file(__file__))  # as `durable serve` this file, with the same options
