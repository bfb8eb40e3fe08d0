"""The SDK's ``workers.gateway``: the options the ``asgi`` and ``wsgi`` adapters share.

workers-runtime-sdk 1.9.5 (``workers/gateway/options.py``) gives ``asgi.fetch``, ``wsgi.fetch``
and their ``entrypoint`` an ``options=`` keyword: ``asgi.Options(encode_body="automatic")``, a
frozen keyword-only dataclass whose one field is the ``encodeBody`` of the responses the adapter
builds. ``"automatic"`` (the default) is what `durable` does; ``"manual"`` (a body compressed
already, sent as it is under its ``Content-Encoding``) has no counterpart in `durable`'s server
(docs/http.md), so an adapter given it raises ``NotImplementedError`` when it serves a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = ["BaseOptions", "EncodeBody"]  # the SDK's; refuse_manual_encoding is for the adapters

EncodeBody = Literal["automatic", "manual"]


@dataclass(frozen=True, kw_only=True)
class BaseOptions:
    """Options shared by the ASGI and WSGI adapters (the SDK's ``BaseOptions``)."""

    encode_body: EncodeBody = "automatic"

    def __post_init__(self) -> None:
        if self.encode_body not in get_args(EncodeBody):
            raise ValueError(f"encode_body must be one of {get_args(EncodeBody)}, got {self.encode_body!r}")

    def response_init(self) -> dict[str, Any]:
        """Extra init fields for the responses the adapter builds (``encodeBody`` when not the default)."""
        return {} if self.encode_body == "automatic" else {"encodeBody": self.encode_body}


def refuse_manual_encoding(options: BaseOptions | None, adapter: str) -> None:
    """Raise ``NotImplementedError`` for ``encode_body="manual"``, which `durable` cannot honour."""
    if options is not None and options.encode_body != "automatic":
        raise NotImplementedError(
            f"{adapter}.Options(encode_body={options.encode_body!r}) is not emulated by durable: its server "
            "compresses a body whose Content-Encoding is gzip itself (encodeBody 'automatic') and has no way "
            "to send a body compressed already (see docs/http.md); leave encode_body at 'automatic'"
        )
