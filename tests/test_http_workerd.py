"""HTTP objects compared with workerd: each expectation here was measured with miniflare 4
(compatibility date 2026-04-07); the measurement is quoted in each test's docstring."""

from __future__ import annotations

import pytest

from durable._http import Response


class TestStatusText:
    @pytest.mark.parametrize(
        ("status", "text"),
        [
            (413, "Payload Too Large"),
            (414, "URI Too Long"),
            (416, "Range Not Satisfiable"),
            (418, "I'm a teapot"),
            (425, "Client Error"),
            (422, "Unprocessable Entity"),
            (200, "OK"),
            (299, "Successful"),
            (404, "Not Found"),
            (599, "Server Error"),
        ],
    )
    def test_default_status_text_is_workerds(self, status: int, text: str) -> None:
        """``new Response(null, {status}).statusText`` in workerd, for every status 200..599, is
        its own table: 413 "Payload Too Large", 414 "URI Too Long", 416 "Range Not Satisfiable",
        418 "I'm a teapot", and 425 (which it does not name) "Client Error"; Python's
        ``http.HTTPStatus`` phrases differ there."""
        assert Response(status=status).status_text == text

    @pytest.mark.parametrize("text", ["a\x7fb", "a\x80b", "\xff", "é", "€", "😀", " a ", ""])
    def test_status_text_accepts_del_and_non_ascii(self, text: str) -> None:
        """workerd: ``new Response(null, {statusText: "a\\x7fb"})`` (and U+0080, U+00FF, é, €, an
        emoji, spaces, "") is accepted and kept as given."""
        assert Response(status_text=text).status_text == text

    @pytest.mark.parametrize("code", [0, 1, 8, 9, 10, 13, 31])
    def test_status_text_refuses_control_characters(self, code: int) -> None:
        """workerd: a statusText holding U+0000..U+001F (tab included) raises ``TypeError: Invalid
        statusText``."""
        with pytest.raises(TypeError, match="^Invalid statusText$"):
            Response(status_text=f"a{chr(code)}b")
