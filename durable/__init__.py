"""durable: Cloudflare Durable Objects, embeddable in Python.

A Durable Object is a single-threaded stateful object addressed by name: ``namespace.id_from_name("A")``
always reaches the one live instance for that name, which owns private, transactional storage.
See ``README.md`` and ``docs/`` for the guide, ``docs/api.md`` for every public name and
``docs/design.md`` for how the modules fit together.

Layering. A module imports only from lower layers, or from its own layer without making a cycle;
imports under ``if TYPE_CHECKING:`` are exempt. ``tests/test_layering.py`` reads this table, so
keep its shape: a layer starts with its number and its modules, the role follows ``--``;
``durable`` is this file and ``compat`` the whole ``durable.compat`` package.

    8  __main__, _cli, _cli_messages, compat, pytest_plugin
           -- the command line, Python Workers compatibility, the pytest plugin (they import the package)
    7  durable                       -- the public API, re-exported
    6  asgi, _wsbridge, testing, _wstesting, _blocking, _serve_limits, _inspect, _serve_ws
           -- fronts: ASGI (only supported names of _http), testing hooks, BlockingRuntime;
              serve's connection bounds; reading a stopped runtime's files (their documented layout)
    5  _runtime, _hosts              -- runtime, env bindings, its lifecycle; the live hosts and their eviction
    4  _namespace, _stub, _rpc_target, _pipeline
           -- ids and stubs -> hosts; functions and RpcTargets over RPC; promise pipelining
    3  _host, _alarms, _hibernation  -- one object's lifecycle: events, gates, resets, sockets
    2  _state, _storage, _counter, _background
           -- what an object sees: ctx, storage; the reference object; block_concurrency_while
              and wait_until work
    1  _sql, _directory, _kv, _transaction, _storage_alarm, _bookmarks
           -- ctx.storage.sql: the connection, rows, cursors; the storage directory
           (path lock, metadata database, alarm index, object names, file naming and removal);
           storage's parts: ctx.storage.kv, transactions, the alarm methods, bookmarks
    0  _sql_rules, _sql_reads, _sql_loops, _sql_multi, _sql_twin, _sqlite, _codec, _v8size, _gates, _id, _clock, _limits, _http, _url, _object, _aliases,
       _exceptions, _history, _websocket, _context, _util, _output_gate, _eager,
       _history_log, _history_capture, _snapshot, _kvcache, _dbmeta, _dbfile, _done, _keys, _wsbase, _wsnetwork, _wsdelivery,
       _alarm_state, _object_class
           -- building blocks: SQL rules and rows_read's statement shapes, the database, values, gates, ids, time, HTTP, sockets;
              storage's resolved awaitable and its key, value and range checks; an object's
              commits, alarm bookkeeping and class

_sqlite knows nothing of objects or the event loop; _http and _websocket know nothing of objects:
_hibernation plugs the object layer into sockets through _wsbase.ObjectHooks.
"""

from __future__ import annotations

from ._blocking import BlockingNamespace as BlockingNamespace
from ._blocking import BlockingRuntime as BlockingRuntime
from ._blocking import BlockingStub as BlockingStub
from ._clock import Clock as Clock
from ._counter import Counter as Counter
from ._exceptions import ConnectionClosedError as ConnectionClosedError
from ._exceptions import DataCloneError as DataCloneError
from ._exceptions import DataCorruptionError as DataCorruptionError
from ._exceptions import DurableError as DurableError
from ._exceptions import InvalidTransactionError as InvalidTransactionError
from ._exceptions import NoFetchHandlerError as NoFetchHandlerError
from ._exceptions import ObjectAbortedError as ObjectAbortedError
from ._exceptions import ObjectResetError as ObjectResetError
from ._exceptions import OverloadedError as OverloadedError
from ._exceptions import PathLockedError as PathLockedError
from ._exceptions import RpcNotImplementedError as RpcNotImplementedError
from ._exceptions import RuntimeClosedError as RuntimeClosedError
from ._exceptions import SqlError as SqlError
from ._exceptions import StorageLimitError as StorageLimitError
from ._http import ExecutionContext as ExecutionContext
from ._http import Headers as Headers
from ._http import Request as Request
from ._http import Response as Response
from ._http import WorkerEntrypoint as WorkerEntrypoint
from ._id import DurableObjectId as DurableObjectId
from ._kv import SyncKV as SyncKV
from ._limits import Limits as Limits
from ._namespace import Namespace as Namespace
from ._object import AlarmInfo as AlarmInfo
from ._object import DurableObject as DurableObject
from ._object import Env as Env
from ._rpc_target import RpcTarget as RpcTarget
from ._runtime import Runtime as Runtime
from ._snapshot import DurableObjectSnapshot as DurableObjectSnapshot
from ._sql import SqlCursor as SqlCursor
from ._sql import SqlRow as SqlRow
from ._sql import SqlStorage as SqlStorage
from ._state import State as State
from ._storage import Storage as Storage
from ._stub import RpcMethod as RpcMethod
from ._stub import RpcPromise as RpcPromise
from ._stub import Stub as Stub
from ._transaction import Transaction as Transaction
from ._websocket import WebSocket as WebSocket
from ._websocket import WebSocketClosed as WebSocketClosed
from ._websocket import WebSocketError as WebSocketError
from ._websocket import WebSocketPair as WebSocketPair
from ._websocket import WebSocketRequestResponsePair as WebSocketRequestResponsePair
from .asgi import asgi_app as asgi_app

# isort: split
from . import testing as testing  # after the names it uses; `durable.testing.X` works after `import durable`

__version__ = "0.1.0.dev0"

__all__ = [
    "AlarmInfo",
    "BlockingNamespace",
    "BlockingRuntime",
    "BlockingStub",
    "Clock",
    "ConnectionClosedError",
    "Counter",
    "DataCloneError",
    "DataCorruptionError",
    "DurableError",
    "DurableObject",
    "DurableObjectId",
    "DurableObjectSnapshot",
    "Env",
    "ExecutionContext",
    "Headers",
    "InvalidTransactionError",
    "Limits",
    "Namespace",
    "NoFetchHandlerError",
    "ObjectAbortedError",
    "ObjectResetError",
    "OverloadedError",
    "PathLockedError",
    "Request",
    "Response",
    "RpcMethod",
    "RpcNotImplementedError",
    "RpcPromise",
    "RpcTarget",
    "Runtime",
    "RuntimeClosedError",
    "SqlCursor",
    "SqlError",
    "SqlRow",
    "SqlStorage",
    "State",
    "Storage",
    "StorageLimitError",
    "Stub",
    "SyncKV",
    "Transaction",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketError",
    "WebSocketPair",
    "WebSocketRequestResponsePair",
    "WorkerEntrypoint",
    "asgi_app",
]

# Exported classes present themselves as ``durable.X``, not ``durable._module.X``.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or callable(_obj):
        try:
            _obj.__module__ = "durable"
        except (AttributeError, TypeError):  # pragma: no cover
            pass
del _name, _obj
