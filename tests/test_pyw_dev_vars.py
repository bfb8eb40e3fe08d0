"""Local secrets of a Python Workers project: ``.dev.vars`` / ``.env`` files next to the wrangler
config, which ``wrangler dev`` adds to ``env`` over ``vars`` (wrangler 4,
``packages/wrangler/src/dev/dev-vars.ts`` and ``config/dot-env.ts``; the file syntax is the
``dotenv`` package's). Before, they were not read: ``self.env.API_KEY`` raised ``AttributeError``
for a secret the Worker reads under ``wrangler dev``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest

import durable
from durable.compat import python_workers as pw
from durable.compat.python_workers._devvars import parse_dotenv

pytestmark = pytest.mark.usefixtures("python_workers_shims")

ENTRY = """
import json
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        names = ("API_KEY", "MODE", "URL", "ONLY_VAR")
        return Response(json.dumps({n: getattr(self.env, n, None) for n in names}))
"""


def project(tmp_path: Path, files: dict[str, str], env_section: bool = False, extra: str = "") -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "entry.py").write_text(textwrap.dedent(ENTRY))
    envs = ', "env": {"staging": {"vars": {"MODE": "staging-var"}}}' if env_section else ""
    (tmp_path / "wrangler.jsonc").write_text(
        '{"main": "src/entry.py", "compatibility_date": "2026-04-07", "compatibility_flags": ["python_workers"],'
        f' "vars": {{"MODE": "var", "ONLY_VAR": "kept"}}{envs}{extra}}}'
    )
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    return tmp_path


async def served(path: Path, env: str | None = None) -> dict[str, str | None]:
    async with durable.Runtime() as runtime:
        app = pw.asgi_app(pw.load_project(path, env=env), runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
            return (await client.get("/")).json()  # type: ignore[no-any-return]


class TestDevVars:
    async def test_dev_vars_override_vars(self, tmp_path: Path) -> None:
        """``.dev.vars`` values are strings on ``env``, over the config's ``vars``; a ``.env`` is
        then not read."""
        path = project(tmp_path, {".dev.vars": 'API_KEY="s3cret"\nMODE=dev # local\n', ".env": "URL=ignored\n"})
        assert await served(path) == {"API_KEY": "s3cret", "MODE": "dev", "URL": None, "ONLY_VAR": "kept"}

    async def test_env_files_merge_and_expand_without_dev_vars(self, tmp_path: Path) -> None:
        """Without ``.dev.vars``: ``.env`` then ``.env.local`` (later wins), expanded as
        ``dotenv-expand`` does."""
        files = {".env": "API_KEY=base\nHOST=example.com\nURL=https://${HOST}/x\n", ".env.local": "API_KEY=local\n"}
        assert await served(project(tmp_path, files)) == {
            "API_KEY": "local",
            "MODE": "var",
            "URL": "https://example.com/x",
            "ONLY_VAR": "kept",
        }

    async def test_an_environment_reads_its_own_file(self, tmp_path: Path) -> None:
        """With ``--env staging``, ``.dev.vars.staging`` replaces ``.dev.vars`` entirely."""
        files = {".dev.vars": "API_KEY=top\nURL=u\n", ".dev.vars.staging": "API_KEY=stage\n"}
        path = project(tmp_path, files, env_section=True)
        assert await served(path, env="staging") == {
            "API_KEY": "stage",
            "MODE": "staging-var",
            "URL": None,
            "ONLY_VAR": None,
        }
        assert pw.load_project(path).vars == {"MODE": "var", "ONLY_VAR": "kept", "API_KEY": "top", "URL": "u"}

    async def test_secrets_required_keeps_only_the_names_it_lists(self, tmp_path: Path) -> None:
        """With ``"secrets": {"required": [...]}`` only those keys are loaded; one no file
        defines is a warning naming it."""
        files = {".dev.vars": "API_KEY=k\nURL=not-required\n"}
        path = project(tmp_path, files, extra=', "secrets": {"required": ["API_KEY", "TOKEN"]}')
        assert await served(path) == {"API_KEY": "k", "MODE": "var", "URL": None, "ONLY_VAR": "kept"}
        assert any("`secrets.required` names TOKEN" in warning for warning in pw.load_project(path).warnings)

    def test_secrets_required_must_be_a_list_of_names(self, tmp_path: Path) -> None:
        path = project(tmp_path, {".dev.vars": "A=1\n"}, extra=', "secrets": {"required": "A"}')
        with pytest.raises(pw.ProjectError, match="secrets.required` must be a list of secret names"):
            pw.load_project(path)


def test_dotenv_syntax() -> None:
    """``dotenv.parse``: ``export``, ``KEY: value``, comments after an unquoted value, quotes of
    three kinds (a ``#`` inside kept), ``\\n`` expanded only in double quotes, values over lines,
    keys with ``.`` and ``-``, lines that are not assignments ignored."""
    text = (
        "# comment\nexport A=1\nB = two words   # trailing\nC=\"line\\nnext\"\nD='raw \\n'\nE=`back`\n"
        'F: colon\nG=\nH="multi\nline"\nnot an assignment\nJ.K-L=ok\nM="has # hash"\r\n'
    )
    assert parse_dotenv(text) == {
        "A": "1",
        "B": "two words",
        "C": "line\nnext",
        "D": "raw \\n",
        "E": "back",
        "F": "colon",
        "G": "",
        "H": "multi\nline",
        "J.K-L": "ok",
        "M": "has # hash",
    }
