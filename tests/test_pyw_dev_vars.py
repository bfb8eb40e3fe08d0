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
    (tmp_path / "src").mkdir(parents=True)
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


class TestWranglerRules:
    """Measured against wrangler's code (workers-sdk, ``dev/dev-vars.ts``, ``config/dot-env.ts``)
    and the packages it runs (``dotenv`` 16.3.1, ``dotenv-expand`` 12.0.3, run under Node)."""

    async def test_a_secrets_section_still_lets_files_override_vars(self, tmp_path: Path) -> None:
        """With ``secrets`` declared, a file's key that the config's ``vars`` define overrides it
        (``key in result || required.includes(key)``); ``"secrets": {}`` is valid (``required`` is
        optional). MODE kept its var, and ``{}`` raised ProjectError."""
        files = {".dev.vars": "API_KEY=k\nMODE=dev\nURL=dropped\n"}
        path = project(tmp_path, files, extra=', "secrets": {"required": ["API_KEY"]}')
        assert await served(path) == {"API_KEY": "k", "MODE": "dev", "URL": None, "ONLY_VAR": "kept"}
        path = project(tmp_path / "b", files, extra=', "secrets": {}')
        assert await served(path) == {"API_KEY": None, "MODE": "dev", "URL": None, "ONLY_VAR": "kept"}

    async def test_a_secrets_section_reads_the_process_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without ``.dev.vars``, declared secrets come from ``.env`` and the process environment,
        which wins (``includeProcessEnv: !!secrets``; dotenv-expand keeps a process value). The
        process environment was never read."""
        monkeypatch.setenv("API_KEY", "from-shell")
        monkeypatch.setenv("URL", "shell-url")
        path = project(
            tmp_path,
            {".env": "API_KEY=from-file\nURL=${API_KEY}\n"},
            extra=', "secrets": {"required": ["API_KEY", "URL"]}',
        )
        assert await served(path) == {"API_KEY": "from-shell", "MODE": "var", "URL": "shell-url", "ONLY_VAR": "kept"}
        # Without a secrets section it is read only under CLOUDFLARE_INCLUDE_PROCESS_ENV=true.
        assert (await served(project(tmp_path / "b", {".env": "X=1\n"})))["API_KEY"] is None
        monkeypatch.setenv("CLOUDFLARE_INCLUDE_PROCESS_ENV", "TRUE")
        assert (await served(project(tmp_path / "c", {".env": "X=1\n"})))["API_KEY"] == "from-shell"
        monkeypatch.setenv("CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV", "false")
        assert (await served(project(tmp_path / "d", {".env": "API_KEY=f\n"})))["API_KEY"] is None
        monkeypatch.setenv("CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV", "no")
        with pytest.raises(pw.ProjectError, match='CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV to be "true" or "false"'):
            pw.load_project(project(tmp_path / "e", {".env": "API_KEY=f\n"}))

    async def test_expansion_is_progressive_as_dotenv_expand_12(self, tmp_path: Path) -> None:
        """A reference sees only the keys above it (a later one is empty), ``${X:+alt}`` gives
        ``alt`` when X is set, ``\\$`` is a literal ``$``, a ``$&`` in a value is JavaScript's
        replacement pattern. Forward references were resolved and ``:+`` left as written."""
        text = "URL=${HOST}/x\nHOST=h\nAPI_KEY=${HOST:+set}-${NOPE:+no}\nMODE=\\$HOST ${HOST}\nONLY_VAR=a$&\n"
        assert await served(project(tmp_path, {".env": text})) == {
            "URL": "/x",
            "API_KEY": "set-",
            "MODE": "$HOST h",
            "ONLY_VAR": "a$&",
        }

    def test_an_endless_expansion_is_an_error_not_a_hang(self, tmp_path: Path) -> None:
        """dotenv-expand 12 loops forever on ``B='x\\$B'`` then ``A='y$B'`` (Node runs out of
        memory): refused with an error naming the key."""
        path = project(tmp_path, {".env": "B='x\\$B'\nA='y$B'\n"})
        with pytest.raises(pw.ProjectError, match="value of A in the .env files expands without end"):
            pw.load_project(path)

    async def test_files_are_read_as_node_reads_them(self, tmp_path: Path) -> None:
        """A byte-order mark before the first key is JavaScript whitespace (the key was lost);
        undecodable bytes become U+FFFD (it raised ProjectError)."""
        path = project(tmp_path, {})
        (path / ".dev.vars").write_bytes(b"\xef\xbb\xbfAPI_KEY=k\nMODE=\xff\n")
        assert await served(path) == {"API_KEY": "k", "MODE": "\ufffd", "URL": None, "ONLY_VAR": "kept"}


def test_dotenv_syntax_is_javascripts() -> None:
    """dotenv's expressions under JavaScript's rules: ``\\w`` is ASCII (``CLÉ=1`` is not an
    assignment), ``\\s`` spans lines (``K\\n=v`` is ``K=v``), ``trim()`` strips a BOM. Each was read differently."""
    assert parse_dotenv("CLÉ=1\nA=2") == {"A": "2"}
    assert parse_dotenv("K\n=v") == {"K": "v"}
    assert parse_dotenv("A=\ufeffx\ufeff") == {"A": "x"}
