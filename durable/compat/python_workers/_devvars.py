"""Local secrets of a Python Workers project, as ``wrangler dev`` reads them: ``.dev.vars`` or
``.env`` files next to the wrangler config, whose values are added to ``env`` over ``vars``.

Rules (wrangler 4, ``packages/wrangler/src/dev/dev-vars.ts`` and ``config/dot-env.ts``): with
``--env NAME``, ``.dev.vars.NAME`` is read if it exists, else ``.dev.vars``; only that one file.
When neither exists, the ``.env`` files are read and merged, each overriding the ones before:
``.env``, ``.env.local``, then with ``--env NAME`` ``.env.NAME`` and ``.env.NAME.local``; their
merged values are then expanded (``${OTHER}``, ``$OTHER``, ``${OTHER:-default}``), as
``dotenv-expand`` does (``.dev.vars`` values are not). Every value is a string (a secret), and
overrides a ``vars`` entry of the same name. The process environment is not read (wrangler's
``CLOUDFLARE_INCLUDE_PROCESS_ENV`` is off by default).

The file syntax is the ``dotenv`` package's (v16): ``KEY=value`` or ``KEY: value`` lines, an
optional ``export``, keys of letters, digits, ``_``, ``.`` and ``-``; a value in single, double or
back quotes may span lines (in double quotes ``\\n`` and ``\\r`` are a newline and a carriage
return); an unquoted value ends at ``#`` and is trimmed; other lines are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

__all__ = ["dev_vars", "parse_dotenv"]

_LINE: Final = re.compile(
    r"^[ \t\f\v]*(?:export\s+)?([\w.-]+)(?:[ \t\f\v]*=[ \t\f\v]*|:[ \t\f\v]+)"
    r"""(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?"""
    r"[ \t\f\v]*(?:#.*)?$",
    re.MULTILINE,
)
_QUOTED: Final = re.compile(r"""^(['"`])([\s\S]*)\1$""", re.MULTILINE)


def parse_dotenv(text: str) -> dict[str, str]:
    """The ``KEY=value`` pairs of a dotenv file, as ``dotenv.parse`` reads them (a later key wins)."""
    values: dict[str, str] = {}
    for match in _LINE.finditer(text.replace("\r\n", "\n").replace("\r", "\n")):
        value = (match.group(2) or "").strip()
        quote = value[:1]
        value = _QUOTED.sub(r"\2", value)
        if quote == '"':
            value = value.replace("\\n", "\n").replace("\\r", "\r")
        values[match.group(1)] = value
    return values


def dev_vars(folder: Path, env: str | None) -> tuple[dict[str, str], str | None]:
    """The local secrets for the project whose config is in ``folder``, and the file(s) they came
    from (``None`` when there are none), as ``wrangler dev [--env NAME]`` loads them."""
    for name in ([f".dev.vars.{env}"] if env is not None else []) + [".dev.vars"]:
        path = folder / name
        if path.is_file():
            return parse_dotenv(_read(path)), name
    merged: dict[str, str] = {}
    used = []
    for name in [".env", ".env.local"] + ([f".env.{env}", f".env.{env}.local"] if env is not None else []):
        path = folder / name
        if path.is_file():
            merged.update(parse_dotenv(_read(path)))
            used.append(name)
    if not used:
        return {}, None
    return _expand(merged), ", ".join(used)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f'Failed to load local dev variables file "{path}": {exc}') from exc


_REFERENCE: Final = re.compile(r"(\\)?\$(?:\{([A-Za-z_]\w*)(?:(:?[-=])([^}]*))?\}|([A-Za-z_]\w*))")


def _expand(values: dict[str, str]) -> dict[str, str]:
    """``dotenv-expand``: ``${NAME}`` / ``$NAME`` replaced by NAME's (expanded) value, ``""`` when
    unset; ``${NAME:-default}`` (``${NAME-default}``) the default when NAME is unset (or empty);
    ``\\$`` a literal ``$``."""
    done: dict[str, str] = {}

    def value_of(name: str, seen: frozenset[str]) -> str | None:
        if name in done:
            return done[name]
        if name not in values or name in seen:
            return values.get(name)
        result = _REFERENCE.sub(lambda m: replace(m, seen | {name}), values[name])
        done[name] = result
        return result

    def replace(match: re.Match[str], seen: frozenset[str]) -> str:
        if match.group(1):
            return match.group(0)[1:]  # \$NAME: the text itself, without the backslash
        name = match.group(2) or match.group(5)
        found = value_of(name, seen)
        operator, default = match.group(3), match.group(4)
        if operator is not None and (found is None or (operator.startswith(":") and found == "")):
            return _REFERENCE.sub(lambda m: replace(m, seen), default or "")
        return found or ""

    return {name: value_of(name, frozenset()) or "" for name in values}
