"""Error messages that say what to do: the mistakes a new user makes first, each with its fix."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import logging
import time
from pathlib import Path
from typing import Any

import pytest

import durable
from durable import testing
from durable._cli import main

import helpers


class Obj(durable.DurableObject):
    async def alarm(self, info: durable.AlarmInfo) -> None:
        pass

    async def rows(self) -> Any:
        sql = self.ctx.storage.sql
        sql.exec("CREATE TABLE IF NOT EXISTS t (name TEXT)")
        sql.exec("INSERT INTO t VALUES ('Ada')")
        return {"all": sql.exec("SELECT name FROM t").to_array(), "one": sql.exec("SELECT name FROM t").one()}

    def cursor(self) -> durable.SqlCursor:
        return self.ctx.storage.sql.exec("SELECT 1 AS one")  # a mistake: the caller needs the rows


async def storage_of(rt: durable.Runtime, name: str = "a") -> durable.Storage:
    # These tests drive storage from the test body (see helpers.as_own_code).
    return await helpers.storage_of(rt.namespace(Obj).get_by_name(name))


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class TestForgottenAwait:
    async def test_arithmetic_hints_await(self, durable_runtime: durable.Runtime) -> None:
        """Adding to an un-awaited get raises TypeError asking 'did you forget await?'."""
        storage = await storage_of(durable_runtime)
        value: Any = storage.get("value")
        with pytest.raises(TypeError, match="did you forget await"):
            value + 1
        with pytest.raises(TypeError, match="did you forget await"):
            1 + value

    async def test_truth_comparison_and_indexing(self, durable_runtime: durable.Runtime) -> None:
        """Truth tests, comparisons, indexing and iteration of an un-awaited result all hint await."""
        storage = await storage_of(durable_runtime)
        result: Any = storage.list()
        for use in (bool, lambda r: r < 3, lambda r: r["k"], list, len, lambda r: "k" in r):
            with pytest.raises(TypeError, match="did you forget await"):
                use(result)

    async def test_attribute_hints_await(self, durable_runtime: durable.Runtime) -> None:
        """A dict method looked up on an un-awaited list() says what it is and hints await."""
        storage = await storage_of(durable_runtime)
        result: Any = storage.list()
        with pytest.raises(AttributeError, match=r"'StorageAwaitable' object has no attribute 'items'.*forget await"):
            result.items()

    async def test_type_name_explains_itself(self, durable_runtime: durable.Runtime) -> None:
        """The awaitable's type is named StorageAwaitable, and awaiting it still gives the value."""
        storage = await storage_of(durable_runtime)
        pending = storage.put("k", 1)
        assert type(pending).__name__ == "StorageAwaitable"
        await pending
        assert await storage.get("k") == 1
        assert await storage.get("k") + 1 == 2


class TestAlarmUnit:
    async def test_seconds_are_refused(self, durable_runtime: durable.Runtime) -> None:
        """set_alarm(time.time() + 60) raises TypeError naming milliseconds, and sets nothing."""
        storage = await storage_of(durable_runtime)
        for when in (time.time() + 60, int(time.time()) + 3600, time.time() - 5):
            with pytest.raises(TypeError, match=r"milliseconds since the epoch.*looks like seconds.*1970"):
                await storage.set_alarm(when)
        assert await storage.get_alarm() is None

    async def test_milliseconds_and_datetimes_are_accepted(self, durable_runtime: durable.Runtime) -> None:
        """Milliseconds since the epoch and datetimes are accepted, in the past too."""
        storage = await storage_of(durable_runtime)
        soon = int(time.time() * 1000) + 60_000
        await storage.set_alarm(soon)
        assert await storage.get_alarm() == soon
        await storage.set_alarm(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        await storage.set_alarm(int(time.time() * 1000) - 5_000)

    async def test_small_times_under_a_mock_clock(self) -> None:
        """Under a mock clock started near 0, small millisecond times are not mistaken for seconds."""
        async with durable.Runtime(clock=testing.MockClock(start=5)) as rt:
            storage = await storage_of(rt)
            await storage.set_alarm(10_000)
            assert await storage.get_alarm() == 10_000


class TestDataCloneHints:
    async def test_dataclass_names_asdict(self, durable_runtime: durable.Runtime) -> None:
        """Storing a dataclass instance names dataclasses.asdict as the fix."""
        storage = await storage_of(durable_runtime)
        with pytest.raises(durable.DataCloneError, match=r'"Point".*dataclasses\.asdict\(value\).*Point\(\*\*data\)'):
            await storage.put("p", Point(1, 2))

    @pytest.mark.parametrize(("member", "name"), [(Color.RED, "Color"), (Level.HIGH, "Level")])
    async def test_enum_names_value(self, durable_runtime: durable.Runtime, member: enum.Enum, name: str) -> None:
        """Storing an Enum member (an IntEnum too) names .value and the rebuild as the fix."""
        storage = await storage_of(durable_runtime)
        with pytest.raises(durable.DataCloneError, match=rf"Enum member: store its \.value.*{name}\(value\)"):
            await storage.put("c", member)

    async def test_over_rpc_too(self, durable_runtime: durable.Runtime) -> None:
        """An RPC argument that is a dataclass gets the same hint."""
        stub = durable_runtime.namespace(Obj).get_by_name("a")
        with pytest.raises(durable.DataCloneError, match=r"dataclasses\.asdict"):
            await stub.rows(Point(1, 2))

    async def test_a_returned_sql_cursor_names_to_array(self, durable_runtime: durable.Runtime) -> None:
        """An RPC method returning its SQL cursor (instead of its rows) is told to return cursor.to_array();
        the message keeps workerd's text before the hint."""
        stub = durable_runtime.namespace(Obj).get_by_name("a")
        with pytest.raises(durable.DataCloneError) as info:
            await stub.cursor()
        assert str(info.value).startswith('Could not serialize object of type "SqlCursor". This type does not')
        assert "It is an iterator" in str(info.value) and "cursor.to_array()" in str(info.value)

    async def test_a_generator_names_list(self, durable_runtime: durable.Runtime) -> None:
        """Storing a generator (or any iterator) names list(value) as the fix."""
        storage = await storage_of(durable_runtime)
        with pytest.raises(durable.DataCloneError, match=r'"generator".*It is an iterator: .*list\(value\)'):
            await storage.put("g", (n for n in range(3)))


class TestLimitsMessage:
    async def test_toobig_names_limit_and_limits(self, durable_runtime: durable.Runtime) -> None:
        """A 3 MB value keeps SQLite's text and names the 2 MB limit and durable.Limits."""
        storage = await storage_of(durable_runtime)
        with pytest.raises(durable.StorageLimitError) as info:
            await storage.put("big", b"x" * 3_000_000)
        text = str(info.value)
        assert text.startswith("string or blob too big: SQLITE_TOOBIG")
        assert "2097152 bytes (2 MB)" in text and "durable.Limits" in text


class TestEnvBinding:
    async def test_missing_binding_names_namespace_call(self, durable_runtime: durable.Runtime) -> None:
        """env.X for an unknown X names rt.namespace(cls, name='X') and Runtime(vars=...)."""
        with pytest.raises(AttributeError, match=r"rt\.namespace\(YourClass, name='X'\).*vars=\{'X': value\}"):
            durable_runtime.env.X

    async def test_missing_binding_names_the_served_files_dict(self, durable_runtime: durable.Runtime) -> None:
        """A Worker served by `durable serve` binds namespaces with the file's `bindings` dict, not
        with rt.namespace(): the message names both, so that a served file's author sees the fix."""
        with pytest.raises(AttributeError) as info:
            durable_runtime.env.COUNTERS
        text = str(info.value)
        assert "`durable serve`, bindings = {'COUNTERS': YourClass}" in text
        assert "vars = {'COUNTERS': value} in a served file" in text


class NoSuper(durable.DurableObject):
    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        self.ready = True  # forgot super().__init__(ctx, env)

    async def read(self) -> Any:
        return await self.ctx.storage.get("k")

    async def other(self) -> Any:
        return self.missing  # type: ignore[attr-defined]


class TestForgottenSuperInit:
    async def test_constructing_without_super_init_logs_the_fix(
        self, durable_runtime: durable.Runtime, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A constructor that skips super().__init__(ctx, env) leaves self.ctx unset, and reading it
        raises Python's bare "'NoSuper' object has no attribute 'ctx'" (as on Python Workers); the
        log says why when the instance is made (a __getattr__ carrying the hint would make every
        attribute read of every object ~3x slower on 3.11)."""
        with caplog.at_level(logging.WARNING, logger="durable"):
            with pytest.raises(AttributeError, match="'NoSuper' object has no attribute 'ctx'"):
                await durable_runtime.namespace(NoSuper).get_by_name("a").read()
        assert "NoSuper.__init__ did not call super().__init__(ctx, env)" in caplog.text

    async def test_a_proper_constructor_logs_nothing(
        self, durable_runtime: durable.Runtime, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An object whose constructor calls super().__init__ gets no such warning."""
        with caplog.at_level(logging.WARNING, logger="durable"):
            assert await durable_runtime.namespace(Obj).get_by_name("a").rows() is not None
        assert "did not call super().__init__" not in caplog.text

    async def test_other_missing_attributes_keep_pythons_message(self, durable_runtime: durable.Runtime) -> None:
        """Any other missing attribute raises Python's usual AttributeError."""
        with pytest.raises(AttributeError) as info:
            await durable_runtime.namespace(NoSuper).get_by_name("a").other()
        assert str(info.value) == "'NoSuper' object has no attribute 'missing'"

    async def test_once_per_class(self, durable_runtime: durable.Runtime, caplog: pytest.LogCaptureFixture) -> None:
        """A class that keeps its state as self.state (the JavaScript idiom) works as long as it never
        reads self.ctx: it is told once, not once more for every object it makes (it was logged at
        each construction, so a served app's log repeated it for every object and every wake)."""
        with caplog.at_level(logging.WARNING, logger="durable"):
            ns = durable_runtime.namespace(KeepsState)
            assert [await ns.get_by_name(name).count() for name in ("a", "b", "c")] == [1, 1, 1]
        texts = [r.getMessage() for r in caplog.records if "did not call super().__init__" in r.getMessage()]
        assert texts == [
            "durable: KeepsState.__init__ did not call super().__init__(ctx, env), so self.ctx and "
            "self.env are not set and reading them raises AttributeError"
        ]

    @pytest.mark.parametrize("cls", ["CtxProperty", "RaisingGetattr"])
    async def test_the_check_runs_none_of_the_class_code(self, durable_runtime: durable.Runtime, cls: str) -> None:
        """A `ctx` property, or a `__getattr__`, that raises is not run by the check: the object
        works as before the warning existed (the check's hasattr raised their error out of the
        construction, so every call failed)."""
        assert await durable_runtime.namespace(globals()[cls]).get_by_name("a").count() == 1


class KeepsState(durable.DurableObject):
    def __init__(self, state: durable.State, env: durable.Env) -> None:
        self.state = state

    async def count(self) -> int:
        value: int = (await self.state.storage.get("n") or 0) + 1
        await self.state.storage.put("n", value)
        return value


class CtxProperty(KeepsState):
    @property
    def ctx(self) -> durable.State:  # type: ignore[override]
        raise RuntimeError("use self.state")


class RaisingGetattr(KeepsState):
    def __getattr__(self, name: str) -> Any:
        raise KeyError(name)


class TestSqlRows:
    def test_sqlrow_is_exported(self) -> None:
        """durable.SqlRow, named by docs/sql.md, is the class of result rows."""
        assert durable.SqlRow.__module__ == "durable"

    async def test_rows_cross_rpc_as_dicts(self, durable_runtime: durable.Runtime) -> None:
        """Rows returned from an RPC method arrive as plain dicts."""
        result = await durable_runtime.namespace(Obj).get_by_name("a").rows()
        assert result == {"all": [{"name": "Ada"}], "one": {"name": "Ada"}}
        assert type(result["one"]) is dict


def serve(tmp_path: Path, source: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    path = tmp_path / "app.py"
    path.write_text(source, encoding="utf-8")
    code = main(["serve", str(path), "--in-memory", *extra])
    return code, capsys.readouterr().err


class TestCommandLine:
    def test_version(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`durable --version` prints the version and exits 0."""
        assert main(["--version"]) == 0
        assert capsys.readouterr().out.strip() == f"durable {durable.__version__} (durable-objects)"

    def test_reload_is_refused_with_a_reason(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`durable serve f.py --reload` exits 2 saying it is not supported and what to do instead."""
        code, err = serve(tmp_path, "import durable\n", capsys, "--reload")
        assert code == 2
        assert "--reload is not supported" in err and "start it again" in err
        assert "usage:" not in err

    def test_worker_under_another_name(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A Worker class with another name is named, with the alias to add."""
        source = "import durable\nclass Front(durable.WorkerEntrypoint):\n    async def fetch(self, r): ...\n"
        code, err = serve(tmp_path, source, capsys)
        assert code == 2
        assert "defines no `Worker`, but it defines the Worker class Front" in err
        assert "`Worker = Front`" in err

    def test_two_worker_classes(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Two Worker classes under other names: both named, and that one is to be chosen."""
        source = (
            "import durable\nclass A(durable.WorkerEntrypoint):\n    async def fetch(self, r): ...\n"
            "class B(durable.WorkerEntrypoint):\n    async def fetch(self, r): ...\n"
        )
        code, err = serve(tmp_path, source, capsys)
        assert code == 2
        assert "defines the Worker classes A, B: `durable serve` serves one" in err and "`Worker = A`" in err

    def test_fastapi_app(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A FastAPI app is named as such, with the way to serve it and mount durable in it."""
        code, err = serve(tmp_path, "from fastapi import FastAPI\napp = FastAPI()\n", capsys)
        assert code == 2
        assert "ASGI application app (FastAPI)" in err and "uvicorn" in err and "strip_root_path=True" in err

    def test_only_durable_objects(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A file with objects but no Worker names the objects and says what to define."""
        source = "import durable\nclass Room(durable.DurableObject):\n    pass\n"
        code, err = serve(tmp_path, source, capsys)
        assert code == 2
        assert "Durable Object classes Room" in err and "WorkerEntrypoint subclass named Worker" in err


CLOSED: list[int] = []


class MisnamedHandler(durable.DurableObject):
    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def websocket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        ws.send("never called: the handler is web_socket_message")

    async def web_socket_close(self, ws: durable.WebSocket, code: int, reason: str, was_clean: bool) -> None:
        CLOSED.append(code)  # events run in order: both messages were handled before this

    async def on_message(self) -> None:
        """Not a near miss of a handler's name: never named in a warning."""


class TestMisnamedWebSocketHandler:
    async def test_a_near_miss_is_named_once(
        self, durable_runtime: durable.Runtime, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A class whose message handler is misspelled drops every message silently, as workerd
        does; durable logs once which method looks meant, instead of leaving the user with nothing."""
        CLOSED.clear()
        stub = durable_runtime.namespace(MisnamedHandler).get_by_name("a")
        response = await stub.fetch("http://room/", headers={"Upgrade": "websocket"})
        ws = response.web_socket
        assert ws is not None
        ws.accept()
        with caplog.at_level("WARNING", logger="durable"):
            ws.send("one")
            ws.send("two")
            ws.close(1000, "bye")
            for _ in range(1000):  # frames arrive on later loop turns
                if CLOSED:
                    break
                await asyncio.sleep(0)
        assert CLOSED == [1000]
        texts = [r.getMessage() for r in caplog.records if r.name == "durable"]
        assert texts == [
            "durable: MisnamedHandler has no web_socket_message handler, so a WebSocket event was dropped; "
            "did you mean to name its method websocket_message as web_socket_message (or webSocketMessage)?"
        ]

    def test_only_near_misses_are_named(self, caplog: pytest.LogCaptureFixture) -> None:
        """`on_message` is no near miss of `web_socket_error`: a dropped error event logs nothing."""
        from durable._hibernation import warn_misnamed_handler

        with caplog.at_level("WARNING", logger="durable"):
            warn_misnamed_handler(MisnamedHandler, "web_socket_error", "webSocketError")
        assert caplog.records == []

    def test_a_nested_class_is_no_near_miss(self, caplog: pytest.LogCaptureFixture) -> None:
        """A nested message type named `WebSocketMessage` is callable but no method: a dropped
        message names nothing (it was named as the method "meant" to be web_socket_message)."""
        from durable._hibernation import warn_misnamed_handler

        with caplog.at_level("WARNING", logger="durable"):
            warn_misnamed_handler(WithMessageType, "web_socket_message", "webSocketMessage")
        assert caplog.records == []

    def test_the_scan_runs_no_descriptor(self, caplog: pytest.LogCaptureFixture) -> None:
        """The scan reads the class without running its descriptors: one that raises when read
        from the class (it raised out of the dropped event) is skipped, and a near miss is still
        named."""
        from durable._hibernation import warn_misnamed_handler

        with caplog.at_level("WARNING", logger="durable"):
            warn_misnamed_handler(WithRaisingDescriptor, "web_socket_close", "webSocketClose")
        assert [r.getMessage() for r in caplog.records] == [
            "durable: WithRaisingDescriptor has no web_socket_close handler, so a WebSocket event was dropped; "
            "did you mean to name its method websocket_close as web_socket_close (or webSocketClose)?"
        ]


class WithMessageType(durable.DurableObject):
    @dataclasses.dataclass
    class WebSocketMessage:
        text: str

    async def web_socket_close(self, ws: durable.WebSocket, code: int, reason: str, was_clean: bool) -> None:
        pass


class InstanceOnly:
    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            raise RuntimeError("read from the class")
        return lambda: None


class WithRaisingDescriptor(durable.DurableObject):
    a_helper = InstanceOnly()

    async def websocket_close(self, ws: durable.WebSocket, code: int, reason: str, was_clean: bool) -> None:
        pass
