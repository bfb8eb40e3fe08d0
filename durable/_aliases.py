"""Cloudflare's camelCase spellings, as aliases of the snake_case names, defined in one table.

Code ported from Cloudflare (JavaScript or Python Workers) calls ``idFromName``, ``getByName``,
``blockConcurrencyWhile``, ``deleteAll``, ``setAlarm``, ``toArray``... Each class listed here gets
those names as plain aliases of the same methods or properties (no wrapper, no extra call cost),
through :func:`camel_aliases`, applied as a class decorator. Type checkers do not run decorators,
so each of those classes also ends with an ``if TYPE_CHECKING:`` block declaring the same aliases
(``deleteAll = delete_all``); ``tests/test_aliases.py`` fails when a block and this table differ and
prints the block to paste. Keyword options use the same idea:
:data:`OPTION_ALIASES` maps ``startAfter=`` to ``start_after=`` and so on.
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["ALIASES", "OPTION_ALIASES", "camel_aliases", "normalize_options"]

_T = TypeVar("_T", bound=type)

ALIASES: dict[str, dict[str, str]] = {
    "Namespace": {
        "idFromName": "id_from_name",
        "newUniqueId": "new_unique_id",
        "idFromString": "id_from_string",
        "getByName": "get_by_name",
    },
    "BlockingNamespace": {
        "idFromName": "id_from_name",
        "newUniqueId": "new_unique_id",
        "idFromString": "id_from_string",
        "getByName": "get_by_name",
    },
    "DurableObjectId": {"toString": "to_string"},
    "State": {
        "blockConcurrencyWhile": "block_concurrency_while",
        "waitUntil": "wait_until",
        "acceptWebSocket": "accept_web_socket",
        "getWebSockets": "get_web_sockets",
        "getTags": "get_tags",
        "setWebSocketAutoResponse": "set_web_socket_auto_response",
        "getWebSocketAutoResponse": "get_web_socket_auto_response",
        "getWebSocketAutoResponseTimestamp": "get_web_socket_auto_response_timestamp",
        "setHibernatableWebSocketEventTimeout": "set_hibernatable_web_socket_event_timeout",
        "getHibernatableWebSocketEventTimeout": "get_hibernatable_web_socket_event_timeout",
        "onNextSessionRestore": "on_next_session_restore",
    },
    "WebSocket": {
        "readyState": "ready_state",
        "addEventListener": "add_event_listener",
        "removeEventListener": "remove_event_listener",
        "serializeAttachment": "serialize_attachment",
        "deserializeAttachment": "deserialize_attachment",
    },
    "WebSocketRequestResponsePair": {"getRequest": "get_request", "getResponse": "get_response"},
    "Storage": {
        "deleteAll": "delete_all",
        "getAlarm": "get_alarm",
        "setAlarm": "set_alarm",
        "deleteAlarm": "delete_alarm",
        "transactionSync": "transaction_sync",
        "getCurrentBookmark": "get_current_bookmark",
        "getBookmarkForTime": "get_bookmark_for_time",
        "onNextSessionRestoreBookmark": "on_next_session_restore_bookmark",
    },
    "Transaction": {
        "deleteAll": "delete_all",
        "getAlarm": "get_alarm",
        "setAlarm": "set_alarm",
        "deleteAlarm": "delete_alarm",
    },
    "SqlStorage": {"databaseSize": "database_size"},
    "_RawIterator": {"toArray": "to_array"},
    "SqlCursor": {
        "toArray": "to_array",
        "columnNames": "column_names",
        "rowsRead": "rows_read",
        "rowsWritten": "rows_written",
    },
    "Headers": {"getAll": "get_all", "getSetCookie": "get_set_cookie"},
    "_Body": {"arrayBuffer": "array_buffer", "bodyUsed": "body_used"},
    "Response": {"statusText": "status_text", "webSocket": "web_socket"},
    "ExecutionContext": {
        "waitUntil": "wait_until",
        "passThroughOnException": "pass_through_on_exception",
    },
    "AlarmInfo": {
        "retryCount": "retry_count",
        "isRetry": "is_retry",
        "scheduledTime": "scheduled_time",
    },
}
"""Class name -> {camelCase alias: snake_case attribute}."""

OPTION_ALIASES: dict[str, str] = {
    "startAfter": "start_after",
    "allowConcurrency": "allow_concurrency",
    "allowUnconfirmed": "allow_unconfirmed",
    "noCache": "no_cache",
}
"""camelCase keyword option -> snake_case keyword option."""


def camel_aliases(cls: _T) -> _T:
    """Give ``cls`` the camelCase aliases listed for its name in :data:`ALIASES`."""
    for alias, target in ALIASES.get(cls.__name__, {}).items():
        for klass in cls.__mro__:
            if target in klass.__dict__:
                setattr(cls, alias, klass.__dict__[target])
                break
        else:  # pragma: no cover - a typo in the table
            raise AttributeError(f"{cls.__name__} has no attribute {target!r} to alias as {alias!r}")
    return cls


def normalize_options(func: str, options: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    """Translate camelCase option names and refuse unknown ones with a ``TypeError`` naming them."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        name = OPTION_ALIASES.get(key, key)
        if name not in allowed:
            raise TypeError(f"{func}() got an unexpected keyword argument {key!r}")
        out[name] = value
    return out
