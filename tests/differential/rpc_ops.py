"""Random RPC interactions between a caller and a Durable Object, run in workerd and in ``durable``.

An interaction is a list of steps a caller (workerd: a Worker; here: plain code) makes against one
fresh object through one stub; ``rpc_worker.js`` and :class:`RpcSide` run them, each answering per
step ``{"ok": tagged value}`` or ``{"err": error}``. Values are ``codec``'s tagged JSON, drawn by
``ops.Generator.value`` (shared references and cycles included), plus two tags of this module:

    error   {"t": "error", "cls": C, "message": m, "cause"?: error, "code"?: value} going in; coming
            back {"t": "error", "name", "message", "remote", "cause"?, "code"?} (``code``: an own
            property / instance attribute). C is Error, TypeError, RangeError or Custom (an Error
            subclass), in Python Exception, TypeError, ValueError and ``Custom(Exception)``.
    plain   an instance of a plain class (``Plain``), which cannot be cloned (arguments only)
    stub    what came back as a stub: a function or an RpcTarget (results only); the caller keeps
            it (``held``, in the order met) for later steps

Steps (``op``): ``echo`` (any number of arguments, returned as a list), ``pair`` (``[v, v]``, one
value twice), ``make`` (a result of kind ``MAKE_KINDS``: functions, class instances, targets,
errors, nested), ``fail`` (the object throws an error), ``missing`` (a call of a name that is not a
method: unknown, an instance field, a getter), ``prop`` (a property read), ``callback`` (the caller
passes a function the object calls), ``keep`` / ``call_kept`` (a function passed as an argument,
kept and called from a later call: disposed), ``caller_target`` (an RpcTarget of the caller's the
object calls), ``pass_back`` (a stub held from an earlier result sent back to the object, which
calls it), ``held_call`` / ``held_prop`` (calls and reads on a held stub, on a target's stub
sometimes through ``via``, the getter ``child`` once or twice: ``h.child.child.add(v)``), ``pipe`` (promise
pipelining: a chain of calls and property reads on the promise of a call not awaited, ``make`` of
a kind or of ``config``, a plain object holding a function, an RpcTarget and a nested object;
``fail``; ``echo``; a call on a held RpcTarget or callback stub; the stubs its result holds are
not held).

``relay`` (drawn from a stream of its own): the object calls another object by name (``echo``,
``pair``, ``make`` of a value without stubs, ``fail`` thrown on or ``caught`` and returned,
``abort``) and passes on its result or error.

``together`` (drawn from a stream of its own): 2 to 5 calls made at once on the stub
(``Promise.allSettled`` / ``asyncio.gather``) and each one's outcome, in the order made: ``echo``,
``pair``, ``fail``, ``missing``, ``prop``, ``make`` of a value without stubs, and ``bump``, the
counter the examples write (``v = await storage.get(k) ?? 0; await storage.put(k, v + 1);
return v``): calls on one stub arrive in the order made, and the input gate keeps each bump's read
and write together, so concurrent bumps count 0, 1, 2...

``self_pass`` / ``self_call`` (the object's own stub sent over RPC) are not generated: workerd
refuses a Durable Object stub as an RPC value, ``durable`` sends it; nor is an RpcTarget's stub
called as a function (docs/differences.md has both).
Non-Error values thrown (``throw "text"``) and symbols have no Python spelling and are not
generated; neither is disposal by ``using`` (``durable`` has no explicit dispose), only the
disposal of stubs received as arguments when their call ends.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import durable
from durable._rpc_target import CallbackStub, TargetStub

from . import allowances, codec
from .ops import ALPHABET, LONE_SURROGATES, Generator
from .runner import same

Step = dict[str, Any]
Tagged = dict[str, Any]

MAKE_KINDS = ["function", "nested_function", "instance", "nested_instance", "target", "nested_target", "error", "none"]
CLASS_NAMES = ["Error", "TypeError", "RangeError", "Custom"]
PIPE_SOURCES = [*MAKE_KINDS, "config", "config", "fail", "echo", "held", "held", "abort", "bcw"]
"""What the first call of a ``pipe`` step is: ``make`` of a kind, ``fail``, ``echo``, a call on a
held stub (``h(v)`` or ``h.add(v)``), or one that resets the object (``abort``, ``bcw``). Not a
property of the object's stub (``stub.answer.x``): ``durable`` has no property paths on a Durable
Object stub (docs/differences.md)."""
PIPE_NAMES = ["add", "size", "items", "fail", "nope", "name", "fn", "target", "nested", "deep", "dup", "child"]
PIPE_ARITY = {"add": 1, "fn": 1, "deep": 0, "fail": 1}
"""How many arguments a pipelined call of each name gets (Python binds them as Python does)."""
UNSENDABLE: Tagged = {"t": "arr", "v": [{"t": "plain"}]}
NULL: Tagged = {"t": "null"}
RESETTING = ("abort", "bcw")
"""The pipeline sources that reset the object (``ctx.abort()``, a raising ``blockConcurrencyWhile``)."""
"""The argument ``arg`` draws that no call can send (a ``Plain`` instance cannot be cloned)."""


# -- the generator --------------------------------------------------------------------------------


class RpcGenerator:
    """Draws interactions from a seeded ``random.Random`` (the same seed gives the same steps)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"rpc-{seed}")
        self.values = Generator(seed)
        self.values.backend = "kv"  # no 2 MB strings: RPC has no such limit, they only slow the run
        self.held: list[str] = []  # "fn0", "fn1" or "target", as the stubs of results will be held
        self.kept = False  # whether a "keep" step came (a "call_kept" before it fails by language)
        self.more = random.Random(f"rpc-more-{seed}")
        """The stream of ``everyday``'s steps, so that the main one draws what it drew before."""
        self.together = random.Random(f"rpc-together-{seed}")
        """The stream of ``together_step``'s steps, so that the other two draw what they drew."""

    def text(self) -> str:
        """An error message or abort reason: odd characters (NUL, spaces, lone surrogates) included."""
        return "".join(self.rng.choice(ALPHABET + LONE_SURROGATES) for _ in range(self.rng.randint(0, 4)))

    def error(self, depth: int = 0) -> Tagged:
        rng = self.rng
        spec: Tagged = {"t": "error", "cls": rng.choice(CLASS_NAMES), "message": self.text()}
        if depth < 2 and rng.random() < 0.3:
            spec["cause"] = self.error(depth + 1)
        if rng.random() < 0.2:
            spec["code"] = self.values.scalar()
        return spec

    def arg(self) -> Tagged:
        """A value to send: mostly ``ops``' values, sometimes an error or a nested one."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.1:
            return self.error()
        if roll < 0.15:
            return {"t": "arr", "v": [self.values.scalar(), self.error()]}
        if roll < 0.17:
            return {"t": "arr", "v": [{"t": "plain"}]}  # (UNSENDABLE)
        return self.values.value()

    def args(self) -> list[Tagged]:
        return [self.arg() for _ in range(self.rng.choice([0, 1, 1, 1, 2, 3, 4]))]

    def step(self) -> Step:
        rng = self.rng
        kind = rng.choices(
            [
                "echo",
                "pair",
                "make",
                "fail",
                "missing",
                "prop",
                "callback",
                "keep",
                "caller_target",
                "held",
                "abort",
                "bcw",
                "pipe",
            ],
            weights=[20, 6, 12, 8, 4, 4, 6, 3, 3, 14, 1, 1, 14],
        )[0]
        if kind == "pipe":
            return self.pipe_step()
        if kind == "echo":
            return {"op": "echo", "args": self.args()}
        if kind == "pair":
            return {"op": "pair", "args": [self.arg()]}
        if kind == "make":
            made = rng.choice(MAKE_KINDS)
            if made in ("function", "nested_function"):
                self.held.append("fn0" if made == "function" else "fn1")  # how many arguments it takes
            elif made in ("target", "nested_target"):
                self.held.append("target")
            return {"op": "make", "kind": made}
        if kind == "fail":
            return {"op": "fail", "error": self.error()}
        if kind == "missing":
            return {"op": "missing", "name": rng.choice(["nope", "field", "answer", "kept"]), "args": self.args()}
        if kind == "prop":
            return {"op": "prop", "name": rng.choice(["answer", "field", "nope"])}
        if kind == "callback":
            fn = rng.choice(["echo", "pair", "throw", "plain", "make_fn"])
            arg = self.arg()
            if fn == "make_fn" and arg != UNSENDABLE:
                # (a Plain argument fails the call: no function comes back to hold, and the steps
                # after it would call the next stub held, an RpcTarget's, as a function: seed 9634)
                self.held.append("fn0")
            return {"op": "callback", "fn": fn, "args": [arg]}
        if kind == "bcw":  # a blockConcurrencyWhile() callback throws: the object resets
            return {"op": "bcw", "error": self.error()}
        if kind == "abort":
            return {"op": "abort", "reason": rng.choice([self.text(), " a\0b", "  "])}
        if kind == "keep":
            self.kept = True
            return {"op": "keep", "fn": rng.choice(["echo", "pair"])}
        if kind == "caller_target":
            return {"op": "caller_target", "args": [self.arg()]}
        return self.held_step()

    def held_step(self) -> Step:
        rng = self.rng
        if not self.held:
            if self.kept:
                return {"op": "call_kept", "args": [self.arg()]}
            return {"op": "echo", "args": self.args()}
        index = rng.randrange(len(self.held))
        held = self.held[index]
        roll = rng.random()
        # (a function gets as many arguments as it takes: Python's binding rules are a documented
        # difference, docs/differences.md "RPC arguments bind as in Python")
        if roll < 0.3 and held != "fn0":
            return {"op": "pass_back", "index": index, "as": held[:2], "args": [self.arg()]}
        if held.startswith("fn"):
            if roll < 0.4:
                return {"op": "held_prop", "index": index, "name": rng.choice(["nope", "size"])}
            if roll < 0.5:
                return {"op": "held_call", "index": index, "as": "fn", "name": "nope", "args": []}
            return {"op": "held_call", "index": index, "as": "fn", "args": [self.arg()][: int(held[2])]}
        # A path through the target's getter ``child`` (a new Counter), walked where the target
        # lives: "child.size" is not a function., does not implement "items" (fuzz-19).
        via = ["child"] * rng.choice([0, 0, 0, 1, 2])
        if roll < 0.5:
            return {"op": "held_prop", "index": index, "name": rng.choice(["size", "items", "nope"]), "via": via}
        name = rng.choice(["add", "add", "size", "items", "nope", "fail"])
        args = [self.error()] if name == "fail" else [self.arg()]
        if name == "fail" and args[0]["cls"] == "Custom":
            # A Custom error sent as a value arrives in workerd as an Error, so it throws an Error
            # where durable's keeps its class (docs/differences.md "Errors"): not compared.
            args[0]["cls"] = "Error"
        return {"op": "held_call", "index": index, "as": "target", "name": name, "args": args, "via": via}

    def pipe_step(self) -> Step:
        """Calls and property reads on the promise of a call not awaited (promise pipelining),
        chained: ``stub.make("target").add(v).nope``; the first call may throw."""
        rng = self.rng
        src = rng.choice(PIPE_SOURCES)
        step: Step = {"op": "pipe", "src": src}
        if src in ("fail", "bcw"):
            step["error"] = self.error()
        elif src == "abort":
            step["reason"] = self.text()
        elif src == "echo":
            step["args"] = self.args()
        elif src == "held":
            if not self.held:
                step["src"] = "config"
            else:
                step["index"] = rng.randrange(len(self.held))
                step["as"] = self.held[step["index"]][:2]
                step["args"] = [self.arg()][: 0 if self.held[step["index"]] == "fn0" else 1]
        path: list[Step] = []
        for _ in range(rng.choice([1, 1, 2, 2, 3])):
            name = rng.choice(PIPE_NAMES)
            if name == "name" and (
                path[-1:] in ([{"name": "fn"}], [{"name": "deep"}]) or (not path and src == "function")
            ):
                # A JavaScript function's own name and length are reached over RPC, a Python
                # function has no such members (docs/differences.md, seed 9702)
                name = "nope"
            if rng.random() < 0.5 and name not in ("add", "fail"):
                # (a method read without a call: a stub of it in workerd, a TypeError here,
                # docs/differences.md "Awaiting `stub.method` without calling it", seed 9703)
                path.append({"name": name})
            else:
                arity = PIPE_ARITY.get(name, rng.choice([0, 1]))
                if name == "fail":
                    error = self.error()
                    if error["cls"] == "Custom":  # (as in held_step)
                        error["cls"] = "Error"
                    args = [error]
                else:
                    args = [self.arg() for _ in range(arity)]
                path.append({"name": name, "args": args})
        if src in RESETTING:
            # An argument the caller cannot serialize fails the step at once, with the reset still
            # on its way in workerd: a callback of the object called next ran before it there
            # ("called"), here after ("no longer running"). The order of calls on two stubs is
            # not kept (run_rpc.py --seed 9832, interaction 86, miniflare 4.20260426): timing.
            path = [
                {**seg, "args": [NULL if a == UNSENDABLE else a for a in seg["args"]]} if "args" in seg else seg
                for seg in path
            ]
        step["path"] = path
        return step

    def interaction(self) -> list[Step]:
        self.held = []
        self.kept = False
        steps = [self.step() for _ in range(self.rng.randint(3, 10))]
        for _ in range(2):
            if self.more.random() < 0.3:
                steps.insert(self.more.randint(0, len(steps)), self.everyday())
        if self.together.random() < 0.4:
            steps.insert(self.together.randint(0, len(steps)), self.together_step())
        return steps

    def together_step(self) -> Step:
        """Calls made at once on the stub (see the module's docstring), drawn from their own
        stream with the values' generator state restored, as ``everyday`` does."""
        together = self.together
        main, values_rng, keys = self.rng, self.values.rng, list(self.values.keys)
        keyed = self.values.keyed.getstate()  # (the Map keys' stream: see Generator.hashable)
        self.rng = self.values.rng = together
        try:
            calls: list[Step] = []
            for _ in range(together.randint(2, 5)):
                kind = together.choice(["bump", "bump", "bump", "echo", "pair", "fail", "missing", "prop", "make"])
                if kind == "bump":
                    calls.append({"op": "bump", "key": together.choice(["n", "m"])})
                elif kind == "echo":
                    calls.append({"op": "echo", "args": [self.arg() for _ in range(together.randint(0, 2))]})
                elif kind == "pair":
                    calls.append({"op": "pair", "args": [self.arg()]})
                elif kind == "fail":
                    calls.append({"op": "fail", "error": self.error()})
                elif kind == "missing":
                    calls.append({"op": "missing", "name": together.choice(["nope", "field"]), "args": []})
                elif kind == "prop":
                    calls.append({"op": "prop", "name": together.choice(["answer", "field", "nope"])})
                else:
                    calls.append({"op": "make", "kind": together.choice(["error", "none", "instance"])})
            return {"op": "together", "calls": calls}
        finally:
            self.rng, self.values.rng, self.values.keys = main, values_rng, keys
            self.values.keyed.setstate(keyed)

    def everyday(self) -> Step:
        """A call the object passes on to another object (``relay``: ``env.RPC.getByName(peer)``),
        which echoes, pairs, makes a value without stubs, fails (its error thrown on, or caught and
        returned) or resets: values and errors cross two hops. Drawn from a stream of its own, with
        the values drawn from the main one's generator state restored, so that the other steps stay
        what they were."""
        more = self.more
        main, values_rng, keys = self.rng, self.values.rng, list(self.values.keys)
        keyed = self.values.keyed.getstate()  # (the Map keys' stream: see Generator.hashable)
        self.rng = self.values.rng = more
        try:
            via = more.choice(["echo", "echo", "pair", "fail", "caught", "make", "abort"])
            step: Step = {"op": "relay", "via": via}
            if via in ("echo", "pair"):
                step["args"] = [self.arg() for _ in range(1 if via == "pair" else more.randint(0, 3))]
            elif via in ("fail", "caught"):
                step["error"] = self.error()
                if via == "caught" and step["error"]["cls"] == "Custom":
                    # Thrown to the object, a Custom arrives in workerd as an Error whose message
                    # starts with "Custom: ", and keeps that message returned as a value; durable
                    # keeps the class (docs/differences.md "Errors"): not compared.
                    step["error"]["cls"] = "Error"
            elif via == "make":
                step["kind"] = more.choice(["error", "none", "instance", "nested_instance"])
            else:
                step["reason"] = self.text()
            return step
        finally:
            self.rng, self.values.rng, self.values.keys = main, values_rng, keys
            self.values.keyed.setstate(keyed)


# -- the durable side -----------------------------------------------------------------------------


class Custom(Exception):
    """JavaScript's ``class Custom extends Error`` (``rpc_worker.js``)."""


class Plain:
    """A class whose instances cannot be cloned."""


CLASSES: dict[str, type[Exception]] = {
    "Error": Exception,
    "TypeError": TypeError,
    "RangeError": ValueError,
    "Custom": Custom,
}

NAMES: list[tuple[type[BaseException], str]] = [
    (durable.DataCloneError, "DataCloneError"),
    (TypeError, "TypeError"),
    (ValueError, "RangeError"),
    (Custom, "Custom"),
    (Exception, "Error"),
]
"""The JavaScript name each Python class stands for (allowance ``error-classes``)."""


def _build_error(spec: Tagged, defined: dict[int, Any]) -> Exception:
    exc = CLASSES[spec["cls"]](spec["message"])
    if "cause" in spec:
        exc.__cause__ = decode_value(spec["cause"], defined)
    if "code" in spec:
        exc.code = decode_value(spec["code"], defined)  # type: ignore[attr-defined]
    return exc


_self: list[Any] = []
"""The caller's stub of the object of the interaction running, which ``{"t": "self"}`` stands for."""


def _extra(v: Tagged, defined: dict[int, Any]) -> Any:
    if v["t"] == "error":
        return _build_error(v, defined)
    if v["t"] == "plain":
        return Plain()
    if v["t"] == "self":
        return _self[-1]
    raise ValueError(f"no Python value for tag {v['t']!r}")


def decode_value(v: Tagged, defined: dict[int, Any] | None = None) -> Any:
    """A value to send, from its tagged form (``error`` and ``plain`` too)."""
    return codec.decode(v, {} if defined is None else defined, _extra)


def error_info(exc: BaseException, state: Any = None) -> Tagged:
    """What the caller sees of an error: class name (as JavaScript's), message, ``remote``..."""
    name = next((n for cls, n in NAMES if isinstance(exc, cls)), type(exc).__name__)
    out: Tagged = {"t": "error", "name": name, "message": str(exc), "remote": bool(getattr(exc, "remote", False))}
    if getattr(exc, "durable_object_reset", False) is True:
        out["reset"] = True
    if exc.__cause__ is not None:
        out["cause"] = codec.encode(exc.__cause__, state) if state is not None else encode_value(exc.__cause__, [])
    if "code" in vars(exc):
        out["code"] = (
            codec.encode(vars(exc)["code"], state) if state is not None else encode_value(vars(exc)["code"], [])
        )
    return out


def encode_value(x: Any, held: list[Any]) -> Tagged:
    """A result's tagged form; the stubs in it are appended to ``held`` in the order met."""

    def other(y: Any, state: Any) -> Tagged | None:
        if isinstance(y, BaseException):
            return error_info(y, state)
        if isinstance(y, (CallbackStub, TargetStub, durable.Stub)):
            held.append(y)
            return {"t": "stub"}
        return None

    return codec.encode_with(x, other)


class Counter(durable.RpcTarget):
    def __init__(self) -> None:
        self.items: list[Any] = []

    def add(self, v: Any) -> list[Any]:
        self.items.append(v)
        return self.items

    @property
    def size(self) -> float:
        return float(len(self.items))

    @property
    def child(self) -> Counter:
        return Counter()

    def fail(self, error: Exception) -> None:
        raise error


def _raise_from_callback(v: Any) -> Any:
    raise ValueError("from the callback")


CALLBACKS: dict[str, Any] = {
    "echo": lambda v: v,
    "pair": lambda v: [v, v],
    "throw": _raise_from_callback,
    "plain": lambda v: Plain(),
    "make_fn": lambda v: lambda: "from a callback's result",
}

MAKERS: dict[str, Any] = {
    "function": lambda: lambda: "called",
    "nested_function": lambda: ["x", lambda v: [v, v]],
    "instance": Plain,
    "nested_instance": lambda: {"k": Plain()},
    "target": Counter,
    "nested_target": lambda: [Counter(), "y"],
    "error": lambda: _made_error(),
    "none": lambda: None,
    "config": lambda: {"name": "n", "fn": lambda v: [v, v], "target": Counter(), "nested": {"deep": lambda: "deep"}},
}


def _made_error() -> Exception:
    exc = ValueError("made")
    exc.__cause__ = Exception("why")
    return exc


class Rpc(durable.DurableObject):
    """``rpc_worker.js``'s ``Rpc`` in Python."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        self.field = 1.0
        self.kept: Any = None

    @property
    def answer(self) -> float:
        return 42.0

    def echo(self, *args: Any) -> list[Any]:
        return list(args)

    def pair(self, v: Any) -> list[Any]:
        return [v, v]

    def make(self, kind: str) -> Any:
        return MAKERS[kind]()

    def fail(self, spec: Tagged) -> None:
        raise _build_error(spec, {})

    async def use_callback(self, fn: Any, v: Any) -> Any:
        return await fn(v)

    def keep(self, fn: Any) -> None:
        self.kept = fn

    async def bump(self, key: str) -> Any:
        """The counter the examples write: the value before, then one more stored (floats: a
        JavaScript number, not a BigInt)."""
        stored = await self.ctx.storage.get(key)
        value = 0.0 if stored is None else stored
        await self.ctx.storage.put(key, value + 1.0)
        return value

    async def call_kept(self, v: Any) -> Any:
        return await self.kept(v)

    def abort(self, reason: str) -> None:
        self.ctx.abort(reason)

    async def bcw(self, spec: Tagged) -> None:
        async def fail() -> None:
            raise _build_error(spec, {})

        await self.ctx.block_concurrency_while(fail)

    async def use_stub(self, s: Any, v: Any) -> Any:
        return await s.echo(v)

    async def use_held(self, h: Any, kind: str, v: Any) -> Any:
        return await (h(v) if kind == "fn" else h.add(v))

    async def relay(self, peer: str, via: str, *args: Any) -> Any:
        other: Any = self.env.Rpc.get_by_name(peer)
        if via == "caught":
            try:
                return await other.fail(*args)
            except Exception as exc:
                return exc
        method = {"echo": other.echo, "pair": other.pair, "fail": other.fail, "make": other.make, "abort": other.abort}
        return await method[via](*args)


def _relay_args(step: Step, args: list[Any]) -> list[Any]:
    via = step["via"]
    if via in ("fail", "caught"):
        return [step["error"]]
    if via == "make":
        return [step["kind"]]
    if via == "abort":
        return [step["reason"]]
    return args


async def _together(stub: Any, calls: list[Step], name: str) -> list[Any]:
    """Each call's outcome, the calls made at once (``together`` in rpc_worker.js)."""

    async def one(call: Step) -> Any:
        try:
            result = await (stub.bump(call["key"]) if call["op"] == "bump" else _act(stub, call, [], name))
            return {"ok": encode_value(result, [])}
        except Exception as exc:
            return {"err": error_info(exc)}

    return list(await asyncio.gather(*(one(call) for call in calls)))


async def _act(stub: Any, step: Step, held: list[Any], name: str) -> Any:
    args = [decode_value(a) for a in step.get("args", [])]
    op = step["op"]
    if op == "echo":
        return await stub.echo(*args)
    if op == "pair":
        return await stub.pair(*args)
    if op == "make":
        return await stub.make(step["kind"])
    if op == "fail":
        return await stub.fail(step["error"])
    if op == "missing":
        return await getattr(stub, step["name"])(*args)
    if op == "prop":
        return await getattr(stub, step["name"])
    if op == "callback":
        return await stub.use_callback(CALLBACKS[step["fn"]], *args)
    if op == "keep":
        return await stub.keep(CALLBACKS[step["fn"]])
    if op == "call_kept":
        return await stub.call_kept(*args)
    if op == "caller_target":
        return await stub.use_held(Counter(), "target", *args)
    if op == "abort":
        return await stub.abort(step["reason"])
    if op == "bcw":
        return await stub.bcw(step["error"])
    if op == "relay":
        return await stub.relay(f"{name}/peer", step["via"], *_relay_args(step, args))
    if op == "pipe":
        return await _pipe(stub, step, held, args)
    if op == "self_pass":
        [back] = await stub.echo(stub)
        return await back.echo(*args)
    if op == "self_call":
        return await stub.use_stub(stub, *args)
    if step["index"] >= len(held):
        return "no such stub"
    h = held[step["index"]]
    if op == "pass_back":
        return await stub.use_held(h, step["as"], *args)
    for name in step.get("via", []):
        h = getattr(h, name)
    if op == "held_call":
        return await (h(*args) if "name" not in step else getattr(h, step["name"])(*args))
    if op == "held_prop":
        return await getattr(h, step["name"])
    raise ValueError(f"unknown op {op!r}")


async def _pipe(stub: Any, step: Step, held: list[Any], args: list[Any]) -> Any:
    src = step["src"]
    if src == "fail":
        p = stub.fail(step["error"])
    elif src == "bcw":
        p = stub.bcw(step["error"])
    elif src == "abort":
        p = stub.abort(step["reason"])
    elif src == "echo":
        p = stub.echo(*args)
    elif src == "held":
        if step["index"] >= len(held):
            return "no such stub"
        h = held[step["index"]]
        p = h(*args) if step["as"] == "fn" else h.add(*args)
    else:
        p = stub.make(src)
    for segment in step["path"]:
        p = getattr(p, segment["name"])
        if "args" in segment:
            p = p(*[decode_value(a) for a in segment["args"]])
    return await p


class RpcSide:
    """Runs interactions against objects of ``Rpc`` in a ``durable.Runtime``."""

    def __init__(self, runtime: durable.Runtime) -> None:
        self._namespace = runtime.namespace(Rpc, name="Rpc")

    async def run(self, name: str, steps: list[Step]) -> list[Any]:
        stub = self._namespace.get_by_name(name)
        _self[:] = [stub]
        held: list[Any] = []
        out: list[Any] = []
        for step in steps:
            if step["op"] == "together":
                out.append({"together": await _together(stub, step["calls"], name)})
                continue
            try:
                result = await _act(stub, step, held, name)
                # (the stubs a pipelined call gives are not held: the generator does not count them)
                out.append({"ok": encode_value(result, [] if step["op"] == "pipe" else held)})
            except Exception as exc:
                out.append({"err": error_info(exc)})
        return out


# -- comparing ------------------------------------------------------------------------------------


def normalize(result: Any) -> Any:
    """One step's observation with the allowed differences taken out (``allowances``: sets in a
    canonical order, ``undefined`` as ``null``; docs/differences.md "Errors": a thrown ``Custom``
    arrives in workerd as an ``Error`` whose message starts with its name)."""
    if isinstance(result, dict) and "together" in result:
        return {"together": [normalize(r) for r in result["together"]]}
    result = _utf16(allowances.normalize({"op": "get"}, {"ok": result})["ok"])
    if isinstance(result, dict) and "err" in result:
        err = result["err"]
        if err.get("reset"):  # docs/differences.md "Errors": remote is set on reset errors here
            err = result["err"] = {k: v for k, v in err.items() if k != "remote"}
        if err.get("t") == "error" and err["name"] == "Custom" and (err.get("remote") or err.get("reset")):
            message = f"Custom: {err['message']}" if err["message"] else "Custom"  # Error.prototype.toString
            result = {"err": {**err, "name": "Error", "message": message}}
        elif err.get("t") == "error" and err["message"] == "Custom: ":
            # "Custom: \0b" cut at the NUL in workerd; durable cuts the message, "\0b", to ""
            result = {"err": {**err, "message": "Custom"}}
    return _custom_values(result)


def _utf16(x: Any) -> Any:
    """``x`` with its strings as JavaScript reads them: two surrogates that make a pair are one
    character there (``"\\ud800" + "\\udfff"`` drawn apart), not in Python."""
    if isinstance(x, list):
        return [_utf16(y) for y in x]
    if isinstance(x, dict):
        return {k: _utf16(y) for k, y in x.items()}
    if isinstance(x, str):
        return x.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return x


def _custom_values(x: Any) -> Any:
    """``x`` with each ``Custom`` error value named ``Error``: sent as a value (not thrown), an
    ``Error`` subclass arrives in workerd as an ``Error`` with the same message."""
    if isinstance(x, list):
        return [_custom_values(y) for y in x]
    if isinstance(x, dict):
        out = {k: _custom_values(y) for k, y in x.items()}
        if out.get("t") == "error" and out.get("name") == "Custom" and not out.get("remote"):
            out["name"] = "Error"
        return out
    return x


def first_difference(steps: list[Step], workerd: list[Any], durable_: list[Any]) -> str | None:
    """The first step whose normalized observations differ, described; ``None`` if none does."""
    for index, (step, w, d) in enumerate(zip(steps, workerd, durable_, strict=True)):
        nw, nd = normalize(w), normalize(d)
        if not same(nw, nd):
            return f"step {index}: {step}\n  workerd: {nw}\n  durable: {nd}"
    return None
