"""Local secrets of a Python Workers project, as ``wrangler dev`` reads them: ``.dev.vars`` or
``.env`` files next to the wrangler config, whose values are added to ``env`` over ``vars``.

Rules (wrangler 4, ``packages/wrangler/src/dev/dev-vars.ts`` and ``config/dot-env.ts``): with
``--env NAME``, ``.dev.vars.NAME`` is read if it exists, else ``.dev.vars``; only that one file.
When neither exists, the ``.env`` files are read and merged, each overriding the ones before:
``.env``, ``.env.local``, then with ``--env NAME`` ``.env.NAME`` and ``.env.NAME.local``; their
merged values are then expanded as ``dotenv-expand`` 12 does (``.dev.vars`` values are not):
``${OTHER}`` / ``$OTHER`` see only the keys above them (and the process environment when it is
read), ``${OTHER:-default}`` / ``${OTHER-default}`` give the default when OTHER is unset or empty,
``${OTHER:+alt}`` / ``${OTHER+alt}`` give ``alt`` when it is set, ``\\$`` is a literal ``$``.
Every value is a string (a secret). The process environment is read with the ``.env`` files only
when the config declares ``secrets`` or ``CLOUDFLARE_INCLUDE_PROCESS_ENV`` is true (then its
values win over the files'); ``CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV=false`` skips the ``.env``
files.

The file syntax is the ``dotenv`` package's (16.3.1, wrangler's): ``KEY=value`` or ``KEY: value``
lines, an optional ``export``, keys of ASCII letters, digits, ``_``, ``.`` and ``-``; a value in
single, double or back quotes may span lines (in double quotes ``\\n`` and ``\\r`` are a newline
and a carriage return); an unquoted value ends at ``#`` and is trimmed; other lines are ignored.
Its regular expressions are JavaScript's, whose ``\\s`` also matches a byte-order mark and whose
``^`` / ``$`` also match at U+2028 / U+2029: they are translated here, not Python's. Files are read
as Node reads them, undecodable bytes becoming U+FFFD.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

__all__ = ["dev_vars", "parse_dotenv"]

# JavaScript's \s (WhiteSpace and LineTerminator: a byte-order mark and U+2028 included), its
# line terminators (for ^ and $ under the m flag, and for .), and its ASCII-only \w.
_S: Final = "[\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
_JS_SPACE: Final = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_BOL: Final = "(?<![^\\n\\r\\u2028\\u2029])"  # ^ with the m flag
_EOL: Final = "(?![^\\n\\r\\u2028\\u2029])"  # $ with the m flag
_DOT: Final = "[^\\n\\r\\u2028\\u2029]"

# dotenv 16.3.1's LINE expression, in Python's syntax with JavaScript's meanings.
_LINE: Final = re.compile(
    f"{_BOL}{_S}*(?:export{_S}+)?([A-Za-z0-9_.-]+)(?:{_S}*={_S}*?|:{_S}+?)"
    f"""({_S}*'(?:\\\\'|[^'])*'|{_S}*"(?:\\\\"|[^"])*"|{_S}*`(?:\\\\`|[^`])*`|[^#\\r\\n]+)?"""
    f"{_S}*(?:#{_DOT}*)?{_EOL}"
)
_QUOTED: Final = re.compile(f"{_BOL}(['\"`])([\\s\\S]*)\\1{_EOL}")


def parse_dotenv(text: str) -> dict[str, str]:
    """The ``KEY=value`` pairs of a dotenv file, as ``dotenv.parse`` reads them (a later key wins)."""
    values: dict[str, str] = {}
    for match in _LINE.finditer(re.sub("\r\n?", "\n", text)):
        value = (match.group(2) or "").strip(_JS_SPACE)
        quote = value[:1]
        value = _QUOTED.sub(lambda m: m.group(2), value)
        if quote == '"':
            value = value.replace("\\n", "\n").replace("\\r", "\r")
        values[match.group(1)] = value
    return values


def dev_vars(
    folder: Path, env: str | None, *, secrets_declared: bool = False, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, str], str | None]:
    """The local secrets for the project whose config is in ``folder``, and the file(s) they came
    from (``None`` when there are none), as ``wrangler dev [--env NAME]`` loads them.

    ``secrets_declared``: the config has a ``secrets`` section, so (without ``.dev.vars``) the
    process environment ``environ`` (``os.environ`` by default) is read with the ``.env`` files.
    """
    environ = os.environ if environ is None else environ
    for name in ([f".dev.vars.{env}"] if env is not None else []) + [".dev.vars"]:
        path = folder / name
        if path.is_file():
            return parse_dotenv(_read(path)), name
    if not _flag(environ, "CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV", True):
        return {}, None
    merged: dict[str, str] = {}
    used = []
    for name in [".env", ".env.local"] + ([f".env.{env}", f".env.{env}.local"] if env is not None else []):
        path = folder / name
        if path.is_file():
            merged.update(parse_dotenv(_read(path)))
            used.append(name)
    process = dict(environ) if secrets_declared or _flag(environ, "CLOUDFLARE_INCLUDE_PROCESS_ENV", False) else {}
    if process:
        used.append("the process environment")
    if not used:
        return {}, None
    return expand(merged, process), ", ".join(used)


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """One of wrangler's boolean environment variables: ``true`` / ``false`` in any case."""
    value = environ.get(name)
    if value is None:
        return default
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f'Expected {name} to be "true" or "false", but got {value!r}')


def _read(path: Path) -> str:
    """The file as Node's ``readFileSync(path, "utf8")`` gives it (a BOM kept, bad bytes U+FFFD)."""
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise ValueError(f'Failed to load local dev variables file "{path}": {exc}') from exc


_REFERENCE: Final = re.compile(r"(?<!\\)\$\{([^{}]+)\}|(?<!\\)\$([A-Za-z_][A-Za-z0-9_]*)")
_OPERATOR: Final = re.compile(r":\+|\+|:-|-")
_MAX_STEPS: Final = 10_000


def expand(parsed: dict[str, str], process: dict[str, str]) -> dict[str, str]:
    """``dotenv-expand`` 12's ``expand({parsed, processEnv: process})``: each key in file order,
    its references resolved against the keys before it and ``process`` (which wins); a key that
    ``process`` already sets to another value takes that value. Returns ``process`` with the
    expanded keys over it. A value whose expansion never ends (dotenv-expand loops forever) raises
    ``ValueError`` naming the key."""
    running: dict[str, str] = {}
    for key, value in parsed.items():
        if process.get(key) and process[key] != value:
            value = process[key]
        else:
            value = _expand_value(key, value, process, running)
        running[key] = value.replace("\\$", "$")
    return {**process, **running}


def _expand_value(owner: str, value: str, process: dict[str, str], running: dict[str, str]) -> str:
    env = {**running, **process}
    result = value
    seen: set[str] = set()
    for _ in range(_MAX_STEPS):
        match = _REFERENCE.search(result)
        if match is None:
            return result
        seen.add(result)
        template = match.group(0)
        expression = match.group(1) or match.group(2)
        operator = _OPERATOR.search(expression)
        splitter = operator.group(0) if operator else "null"  # JavaScript's split(null) splits on "null"
        key, *rest = expression.split(splitter)
        if splitter in (":+", "+"):
            default, found = (splitter.join(rest) if env.get(key) else ""), None
        else:
            default, found = splitter.join(rest), env.get(key)
        replacement = default if not found or found in seen else found
        result = _replace_first(result, template, replacement)
        if result == running.get(key):
            return result
    raise ValueError(f"the value of {owner} in the .env files expands without end (dotenv-expand would hang)")


def _replace_first(text: str, pattern: str, replacement: str) -> str:
    """JavaScript's ``text.replace(pattern, replacement)`` for a string pattern: the first
    occurrence, with the replacement's ``$$``, ``$&``, ``$``` and ``$'`` patterns."""
    at = text.find(pattern)
    if at < 0:
        return text
    before, after = text[:at], text[at + len(pattern) :]
    special = {"$": "$", "&": pattern, "`": before, "'": after}
    replaced = re.sub(r"\$([$&`'])", lambda m: special[m.group(1)], replacement)
    return before + replaced + after
