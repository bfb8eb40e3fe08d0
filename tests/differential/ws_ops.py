"""Random WebSocket sequences for one object, for the WebSocket differential test.

A sequence is ``{"object": NAME, "steps": [step, ...]}``, run in workerd by ``ws_worker.js`` (through
``harness.mjs ws``) and in durable by ``ws_runner.py``. The driver plays the clients; a step is

- ``{"step": "open", "id": "c3", "tags": [...]}``: a client connects (``stub.fetch`` with
  ``Upgrade: websocket``); the object accepts its end with ``ctx.acceptWebSocket(ws, tags)``, the
  first tag being the socket's id (the handlers and ops find sockets by it; a refused tag list
  answers 400 with the error);
- ``csend`` (``c``, ``data``), ``cclose`` (``c``, optional ``code`` and ``reason``), ``cstate``,
  ``cprops`` (``c``): what a client does with its end; ``burst`` (``steps``): such steps with no wait between
  them (the others wait until everything they set off has happened);
- ``srv`` (``ops``): an RPC call in which the object runs server ops;
- ``hibernate``: durable hibernates the object when nothing keeps it awake (miniflare cannot
  hibernate on demand, so workerd does nothing: the observations must not change).

A server op names its socket by id (``ws``; ``"self"`` inside a handler): ``send``, ``close``,
``state``, ``props`` (``url``, ``protocol``, ``extensions``), ``attach`` (``serializeAttachment``), ``detach`` (``deserializeAttachment``), ``list``
(``getWebSockets(tag)``), ``bcast`` (a send to each of ``getWebSockets(tag)``, from calls only), ``tags``, ``auto`` (``setWebSocketAutoResponse``), ``get_auto``,
``auto_ts``, ``timeout`` (``setHibernatableWebSocketEventTimeout``), ``get_timeout``, ``on_close``
(ops the close handler runs), ``throw``, ``abort`` (``ctx.abort(reason)``: the object is reset,
every socket disconnected, and the code stops there), and ``kv_put`` / ``kv_get`` (``ctx.storage.kv``,
the synchronous key-value API: what survives a reset), and ``st_put`` / ``st_get`` / ``st_delete`` /
``st_list`` (``await ctx.storage.put(key, value)``, ``get``, ``delete``, ``list({prefix})``: the
asynchronous API a handler awaits, as a chat room saves each message; ops that hold one run as an
``async`` list, awaiting each storage call; in the ops ``webSocketClose`` runs, a key ``self/x`` is
the closing socket's own, and a socket accepted with ``accept()`` runs them without their storage
calls). A client message ``"cmd:" + JSON`` makes the object's
``webSocketMessage`` run those ops on the socket it came from (``throw`` makes the handler throw).

Data is ``{"t": text}``, ``{"b": hex}``, ``{"big_t": n, "ch": c}`` or ``{"big_b": n}``; an attachment
value is JSON or ``{"$": "big", "n": n, "ch": c}``, ``{"$": "map", "v": [[k, v], ...]}``,
``{"$": "fn"}`` (not cloneable).
"""

from __future__ import annotations

import json
import random
from typing import Any

Step = dict[str, Any]
Sequence = dict[str, Any]

CODES = (1000, 1001, 1002, 1003, 1007, 1010, 1011, 1012, 1013, 1014, 2000, 2999, 3000, 3999, 4000, 4999)
BAD_CODES = (0, 999, 1004, 1005, 1006, 1015, 1016, 5000, 65536)
REASONS = ("", "bye", "é" * 61, "é" * 62, "a" * 123, "a" * 124, "€" * 41, "€" * 42, "\U0001f600" * 31)
TAGS = ("a", "b", "room:1", "", "é", "x" * 256, "x" * 257, "€" * 86)
TEXTS = ("", "hello", "héllo €", "\U0001f600", "a" * 40, "ping", "pong")
AUTO = (
    ("ping", "pong"),
    ("hello", "world"),
    ("", ""),
    ("ping", ""),
    ("a" * 2048, "b"),
    ("a" * 2049, "b"),
    ("p", "é" * 2048),
)
OWN_OPS = ("send", "close", "state", "props", "attach", "detach", "tags", "auto_ts")
"""The ops a handler may run in a burst or in ``webSocketClose``: on its own socket only. Events of
different sockets interleave by latency in workerd (a socket's Close can overtake another's
earlier Close still behind a message), so an op that looks at other sockets, or at the
auto-response they share, would see an order that neither side defines."""
THROWN = "handler boom"
"""The message of the error an op ``throw`` throws."""
TIMEOUTS = (0, 1, 5000, 604_800_000, 604_800_001, -1, 1.5, None)
STORE_OPS = ("st_put", "st_get", "st_delete", "st_list")
"""The ops that await ``ctx.storage`` (``Generator.stored``)."""


def _closes(step: Step) -> bool:
    """Whether ``step`` (of a burst) closes a socket: a client's ``close()``, or a command whose
    ops close the socket it came from."""
    if step["step"] == "cclose":
        return True
    data = step.get("data", {}).get("t") if step["step"] == "csend" else None
    if not isinstance(data, str) or not data.startswith("cmd:"):
        return False
    return any(op["op"] == "close" for op in json.loads(data[4:]))


class Generator:
    """Draws sequences from a seeded ``random.Random`` (the same seed gives the same sequences)."""

    def __init__(self, seed: int, *, resets: bool = False) -> None:
        self.rng = random.Random(seed)
        self.count = 0
        self.seed = seed
        self.more = random.Random(f"more-{seed}")
        """The stream of the broadcasts ``ops`` adds to calls (``bcast``), so that the main one
        draws what it drew before they were added."""
        self.store = random.Random(f"store-{seed}")
        """The stream of the awaited storage ops (``stored``) added to calls and to the commands of
        hibernatable sockets, so that the main one draws what it drew before they were added."""
        self.resets = random.Random(seed + 1) if resets else None
        """With ``resets``, ops also write and read ``ctx.storage.kv`` and reset the object
        (``abort``, in a call, a command or the ops ``webSocketClose`` runs), drawn from this second stream so that the main one, and so every other
        step, stays what the same seed draws without them."""

    def sequence(self) -> Sequence:
        rng = self.rng
        self.count += 1
        self.opened: list[str] = []
        self.standard: set[str] = set()
        """The sockets accepted with ``accept()`` (their commands await no storage call)."""
        self.auto: str | None = None
        self.close_resets = False
        """Whether a close handler that resets the object may be armed (see ``_apart``)."""
        steps: list[Step] = [self.open()]
        for _ in range(rng.randint(3, 14)):
            steps.extend(self._apart(self.step()))
        return {"object": f"ws-{self.seed}-{self.count}", "steps": steps}

    def _apart(self, step: Step) -> list[Step]:
        """``step``, or a burst with its client closes taken out, each a step of its own after it,
        once a close handler that resets the object may be armed.

        In workerd a close sent after another socket's second message overtook that message (as if
        it took a burst's events a socket at a time), and the close handler's reset lost it (run_ws.py 150 --seed 9666 --resets, sequence 142:
        c1 sent 40 a's and "ping", then c2 closed; workerd ran c2's close, which reset the object,
        before c1's "ping" every run, also with the ping's socket hibernatable and with the close
        sent last; durable runs them in the order sent, miniflare 4.20260426). The order of
        different sockets' events is not defined; with a reset it decides which survive. The
        draws stay as they were. The same for a command that closes its own socket: with c0's
        and c1's commands each closing their socket in one burst, workerd ran c1's close handler
        (which reset the object) first, durable c0's (run_ws.py 200 --seed 9996 --resets,
        sequence 156)."""
        if step["step"] != "burst" or not self.close_resets:
            return [step]
        closes = [s for s in step["steps"] if _closes(s)]
        rest = [s for s in step["steps"] if not _closes(s)]
        if not closes or not rest:
            return [step] if len(closes) < 2 else closes
        return [{"step": "burst", "steps": rest}, *closes]

    def open(self) -> Step:
        rng = self.rng
        id = f"c{len(self.opened)}"
        self.opened.append(id)
        tags = [id]
        roll = rng.random()
        if roll < 0.15:  # usually refused: too many or too long tags
            tags += [rng.choice(TAGS) for _ in range(rng.choice((1, 9, 10)))]
        elif roll < 0.25:  # repeated tags, or the id again
            tags += [rng.choice(("a", "b", id)) for _ in range(rng.randint(1, 4))]
        else:
            tags += rng.sample(["a", "b", "room:1", "é"], rng.randint(0, 3))
        if rng.random() < 0.15:  # accepted with accept(): events to listeners, not hibernatable
            self.standard.add(id)
            return {"step": "open", "id": id, "tags": [id], "standard": True}
        return {"step": "open", "id": id, "tags": tags}

    def step(self) -> Step:
        rng = self.rng
        kind = rng.choices(
            ["open", "csend", "cmd", "cclose", "cstate", "srv", "hibernate", "auto_send", "burst"],
            [2, 3, 3, 1.2, 0.5, 3, 1.5, 1, 2],
        )[0]
        if kind == "burst":
            return {"step": "burst", "steps": [self.client_step() for _ in range(rng.randint(2, 5))]}
        c = rng.choice(self.opened)
        if kind == "open" and len(self.opened) < 5:
            return self.open()
        if kind == "csend" or kind == "open":
            return {"step": "csend", "c": c, "data": self.data()}
        if kind == "auto_send":
            text = self.auto if self.auto is not None and rng.random() < 0.8 else rng.choice(("ping", "hello"))
            if rng.random() < 0.15:  # the request's bytes in a binary message
                return {"step": "csend", "c": c, "data": {"b": text.encode().hex()}}
            return {"step": "csend", "c": c, "data": {"t": text}}
        if kind == "cmd":
            ops = self.stored(self.ops(rng.randint(1, 4), handler=True), c)
            return {"step": "csend", "c": c, "data": {"t": "cmd:" + json.dumps(ops)}}
        if kind == "cclose":
            return {"step": "cclose", "c": c, **self.close_args()}
        if kind == "cstate":
            return {"step": rng.choice(("cstate", "cprops")), "c": c}
        if kind == "hibernate":
            return {"step": "hibernate"}
        return {"step": "srv", "ops": self.stored(self.ops(rng.randint(1, 5), handler=False), None)}

    def client_step(self) -> Step:
        """A step on a client end, for a burst (steps with no wait between them)."""
        rng = self.rng
        c = rng.choice(self.opened)
        kind = rng.choices(["csend", "cmd", "auto_send", "cclose", "cstate"], [3, 3, 1, 1.5, 0.5])[0]
        if kind == "csend":
            return {"step": "csend", "c": c, "data": self.data()}
        if kind == "auto_send":
            return {"step": "csend", "c": c, "data": {"t": self.auto or "ping"}}
        if kind == "cmd":
            ops = self.stored(self.ops(rng.randint(1, 3), handler=True, own=True), c, burst=True)
            return {"step": "csend", "c": c, "data": {"t": "cmd:" + json.dumps(ops)}}
        if kind == "cclose":
            return {"step": "cclose", "c": c, **self.close_args()}
        return {"step": "cstate", "c": c}

    def close_args(self) -> dict[str, Any]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.12:
            return {}
        if roll < 0.15:
            return {"reason": rng.choice(REASONS)}
        code = rng.choice(CODES) if roll < 0.75 else rng.choice(BAD_CODES)
        if rng.random() < 0.4:
            return {"code": code}
        return {"code": code, "reason": rng.choice(REASONS)}

    def data(self) -> dict[str, Any]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.55:
            return {"t": rng.choice(TEXTS)}
        if roll < 0.75:
            return {"b": rng.choice(("", "00", "ff00", bytes(range(20)).hex(), "deadbeef" * 3))}
        if roll < 0.9:
            return {"big_t": rng.choice((100, 70_000, 1_048_577)), "ch": rng.choice(("a", "é", "€"))}
        return {"big_b": rng.choice((21, 65_536, 1_048_577))}

    def stored(self, ops: list[Step], socket: str | None, *, burst: bool = False) -> list[Step]:
        """``ops`` with, half the time, awaited ``ctx.storage`` calls among them (drawn from a stream
        of their own): those of a command on keys of its socket's own (``c1/x``: the order of
        different sockets' events is not defined, see ``OWN_OPS``), none for a socket accepted
        with ``accept()`` (its listeners are not the object's handlers); a call's on any key.
        A closing ``throw`` or ``abort`` stays last.

        In a ``burst`` none goes before the command's ``close``: in workerd a ``close()`` made after
        an awaited ``put()`` (held until the write is confirmed) with two more of the burst's
        messages on their way made the object's ``webSocketClose`` get 1006 ("WebSocket
        disconnected without sending Close frame.", ``wasClean`` false), where with one message, or
        with the ``close()`` before the ``put()``, it got the client's answer (3000 "r", clean),
        as durable does in each case (run_ws.py 150 --seed 9989, sequence 126; minimal: a burst
        of ``cmd:[put, close(3000, "r")]``, ``ping``, ``ping``; miniflare 4.20260426). How many
        messages overtake a held Close is latency."""
        store = self.store
        if socket in self.standard or store.random() < 0.5:
            return ops
        owners = [socket] if socket is not None else self.opened
        end = len(ops)
        while end > 0 and ops[end - 1]["op"] in ("throw", "abort"):
            end -= 1
        body, last = ops[:end], ops[end:]
        closes = [i for i, op in enumerate(body) if op["op"] == "close"] if burst else []
        for _ in range(store.randint(1, 3)):
            kind = store.choice(STORE_OPS)
            key = f"{store.choice(owners)}/{store.choice('xy')}"
            op: Step = {"op": kind, "key": key}
            if kind == "st_put":
                op["value"] = store.choice((0, 1, 7, "hi", "é€", [1, "a"], {"n": 2}, None, True))
            elif kind == "st_list":
                op = {"op": kind, "prefix": key.split("/")[0] + "/" if store.random() < 0.7 else ""}
            first = closes[-1] + 1 if closes else 0
            body.insert(store.randint(first, len(body)), op)
        return body + last

    def ops(self, count: int, *, handler: bool, own: bool = False) -> list[Step]:
        ops = [self.op(handler, own) for _ in range(count)]
        if not handler and self.more.random() < 0.5:
            # A broadcast (``for ws of getWebSockets(tag)) ws.send(data)``), from a call only: not
            # from a handler, whose socket's events interleave with other sockets' (``OWN_OPS``).
            more = self.more
            bcast: Step = {"op": "bcast", "data": {"t": more.choice(TEXTS)} if more.random() < 0.8 else {"b": "00ff"}}
            if more.random() < 0.5:
                bcast["tag"] = more.choice(["a", "b", "room:1", "é", "none", *self.opened])
            ops.insert(more.randint(0, len(ops)), bcast)
        if handler and self.rng.random() < 0.08:
            ops.append({"op": "throw", "message": THROWN})
        extra = self.resets
        if extra is not None and not own:
            for _ in range(extra.choice((0, 0, 1, 2))):
                key = extra.choice(("k", "j"))
                kv: Step = {"op": "kv_get", "key": key}
                if extra.random() < 0.6:
                    kv = {"op": "kv_put", "key": key, "value": extra.randint(0, 9)}
                ops.insert(extra.randint(0, len(ops)), kv)
            if extra.random() < 0.25:  # a reset, after the ops before it (their writes included)
                ops.append({"op": "abort", "reason": "reset by the test"})
        return ops

    def op(self, handler: bool, own: bool = False) -> Step:
        """A server op; ``own``: only on the handler's own socket (see ``OWN_OPS``)."""
        rng = self.rng
        kinds = [*OWN_OPS, "list", "auto", "get_auto", "timeout", "get_timeout", "on_close"]
        kind = rng.choice(OWN_OPS if own else kinds)
        ws = "self" if own or (handler and rng.random() < 0.7) else rng.choice(self.opened)
        op: Step = {"op": kind}
        if kind in OWN_OPS:
            op["ws"] = ws
        if kind == "send":
            op["data"] = self.data()
        elif kind == "close":
            op.update(self.close_args())
        elif kind == "attach":
            op["value"] = self.value()
        elif kind == "list":
            if rng.random() < 0.7:
                op["tag"] = rng.choice(["a", "b", "room:1", "é", "none", *self.opened])
        elif kind == "auto":
            pair = None if rng.random() < 0.2 else list(rng.choice(AUTO))
            op["pair"] = pair
            if pair is not None and len(pair[0]) <= 2048 and len(pair[1]) <= 2048:
                self.auto = pair[0]
        elif kind == "timeout":
            ms = rng.choice(TIMEOUTS)
            if ms is not None:
                op["ms"] = ms
        elif kind == "on_close":
            op["ops"] = [] if rng.random() < 0.3 else self.ops(rng.randint(1, 2), handler=True, own=True)
            if self.resets is not None and self.resets.random() < 0.2:  # a close handler that resets
                op["ops"] = [*op["ops"], {"op": "abort", "reason": "reset by the test"}]
                self.close_resets = True
            # (keys "self/x": the closing socket's own, as a chat room deletes a leaver's state)
            op["ops"] = self.stored(op["ops"], "self")
        return op

    def value(self) -> Any:
        rng = self.rng
        roll = rng.random()
        if roll < 0.2:
            return rng.choice([None, 0, 1.5, -7, True, "", "hi", "é€\U0001f600", [1, "a", None], {"k": [1, {"z": 2}]}])
        if roll < 0.45:
            n = rng.choice((100, 2049, 16_370, 16_378, 16_379, 16_380, 8_185, 8_186, 8_190, 20_000))
            return {"$": "big", "n": n, "ch": rng.choice(("a", "é", "€"))}
        if roll < 0.5:
            return {"$": "map", "v": [[1, "one"], ["k", [2, 3]]]}
        if roll < 0.53:
            return {"$": "fn"}
        # A varied value padded to near the limit: when refused, workerd's message gives its size.
        pad = {"$": "big", "n": rng.randint(15_600, 16_400), "ch": rng.choice(("a", "é", "a"))}
        return [self.rich(3), pad] if rng.random() < 0.5 else {"x": pad, "y": self.rich(3)}

    def rich(self, depth: int) -> Any:
        """A value of the types both sides clone alike (``value`` in ``ws_worker.js``)."""
        rng = self.rng
        kinds = ["int", "bigint", "float", "str", "bool", "null", "bytes"]
        if depth > 0:
            kinds += ["list", "list", "dict", "map", "set", "floats"]
        kind = rng.choice(kinds)
        if kind == "int":
            return rng.choice(
                (0, 1, -1, 63, 64, 127, 128, 8191, 8192, 2**30 - 1, 2**30, -(2**30), -(2**30) - 1, 2**31, 2**53 - 1)
            )
        if kind == "bigint":
            return {"$": "bigint", "v": str(rng.choice((2**53, 2**63, -(2**64), 10**30)))}
        if kind == "float":
            return rng.choice((0.5, -1.25, 1e300, 2.0**-30, 3.0))
        if kind == "str":
            return rng.choice(("", "a", "é" * 3, "€", "\U0001f600", "ab" * 40, "x€y"))
        if kind == "bool":
            return rng.random() < 0.5
        if kind == "null":
            return None
        if kind == "bytes":
            return {"$": "u8", "hex": bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 20, 130)))).hex()}
        if kind == "floats":  # an array V8 keeps as doubles when one item is not a small integer
            return [rng.choice((1, 2, 0.5, 2**31)) for _ in range(rng.randint(1, 5))]
        if kind == "list":
            return [self.rich(depth - 1) for _ in range(rng.randint(0, 4))]
        if kind == "dict":
            keys = rng.sample(
                ["a", "b", "0", "7", "12", "4294967294", "4294967295", "-1", "01", "é"], rng.randint(0, 4)
            )
            return {k: self.rich(depth - 1) for k in keys}
        if kind == "map":
            map_keys: list[Any] = rng.sample([1, 2, "a", 2**31], rng.randint(0, 3))
            if all(isinstance(k, str) for k in map_keys):  # (durable keeps a dict of str keys an Object)
                map_keys.append(5)
            return {"$": "map", "v": [[k, self.rich(depth - 1)] for k in map_keys]}
        return {"$": "set", "v": rng.sample(["a", "b", 1, 2, 2**40], rng.randint(0, 4))}
