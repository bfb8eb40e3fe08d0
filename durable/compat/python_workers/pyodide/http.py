"""``pyodide.http``: ``FetchResponse``, the base class the SDK's responses share."""

from __future__ import annotations

from .._http import FetchResponse as FetchResponse

__all__ = ["FetchResponse", "pyfetch"]


async def pyfetch(url: str, **kwargs: object) -> FetchResponse:
    """Not emulated: outbound HTTP is not part of `durable`."""
    raise NotImplementedError("pyodide.http.pyfetch() is not supported by durable (no outbound HTTP)")
