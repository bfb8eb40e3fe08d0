"""More of ``durable inspect``: queries that would write a file despite ``PRAGMA query_only``."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

import durable
from durable._cli import main


class Table(durable.DurableObject):
    async def fill(self) -> None:
        self.ctx.storage.sql.exec("CREATE TABLE t (x)")
        self.ctx.storage.sql.exec("INSERT INTO t VALUES (1), (2)")


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    path = tmp_path / "state"

    async def body() -> None:
        async with durable.Runtime(path) as rt:
            await rt.namespace(Table).get_by_name("a").fill()

    asyncio.run(body())
    return path


def hashes(path: Path) -> dict[str, str]:
    return {
        str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest() for f in path.rglob("*") if f.is_file()
    }


class TestSqlNeverWritesAFile:
    @pytest.mark.parametrize("statement", ["ATTACH DATABASE '{target}' AS other", "VACUUM INTO '{target}'"])
    def test_attach_and_vacuum_into_refused(
        self, directory: Path, tmp_path: Path, statement: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """ATTACH and VACUUM INTO are refused: PRAGMA query_only let them create the file they name.

        Before, `--sql "ATTACH DATABASE 'x.db' AS e"` answered "(0 rows)" and left an empty x.db.
        """
        target = tmp_path / "made.db"
        before = hashes(directory)
        code = main(["inspect", str(directory), "Table", "a", "--sql", statement.format(target=target)])
        err = capsys.readouterr().err
        assert code == 1
        assert "query refused: ATTACH and VACUUM INTO are refused" in err and "never changes a file" in err
        assert not target.exists()
        assert hashes(directory) == before

    def test_query_only_cannot_be_turned_off(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`PRAGMA query_only=0` is refused; reading the pragma and table-valued pragmas still work."""
        assert main(["inspect", str(directory), "Table", "a", "--sql", "PRAGMA query_only=0"]) == 1
        assert "PRAGMA query_only cannot be changed" in capsys.readouterr().err
        assert main(["inspect", str(directory), "Table", "a", "--sql", "PRAGMA query_only"]) == 0
        assert "(1 row)" in capsys.readouterr().out
        assert main(["inspect", str(directory), "Table", "a", "--sql", "SELECT name FROM pragma_table_info('t')"]) == 0
        assert "'x'" in capsys.readouterr().out
