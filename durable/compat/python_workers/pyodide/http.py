"""``pyodide.http``: ``FetchResponse``, the base class the SDK's responses share, and ``pyfetch``
(outbound HTTP, as ``workers.fetch``)."""

from __future__ import annotations

from .._fetch import pyfetch as pyfetch
from .._http import FetchResponse as FetchResponse

__all__ = ["FetchResponse", "pyfetch"]
