"""Config errors in the file's terms: `ConfigError`, and msgspec's and TOML's errors as one.

msgspec's ValidationError carries its path only inside its text; `translate` is the one place
that reads it, walking the schema for the key path (``channels[2].percent``) and the words of a
broken constraint (its `msgspec.Meta`). `core.config` is its only user.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import msgspec

#: msgspec takes no infinite bound: an upper bound at the largest float refuses exactly inf
#: (TOML has it); the translation says "finite" for it rather than the number.
FINITE = sys.float_info.max

DecHook = Callable[[type, object], object]

__all__ = ["FINITE", "ConfigError", "DecHook", "join_key", "syntax_error", "translate"]


class ConfigError(Exception):
    """A config that cannot be used: `key` is the dotted path of the culprit (None when the
    problem is the file itself), `message` says what is wrong; str() is one line for a human.
    """

    def __init__(
        self,
        key: str | None,
        message: str,
        *,
        source: str | Path | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.key = key
        self.message = message
        self.source = source
        self.line = line
        self.column = column
        parts: list[str] = []
        if source is not None:
            parts.append(str(source))
        if line is not None:
            parts.append(f"line {line}" if column is None else f"line {line}, column {column}")
        if key is not None:
            parts.append(key)
        parts.append(message)
        super().__init__(": ".join(parts))


_TOML_POSITION = re.compile(
    r"^(?P<msg>.*?) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$"
)


def syntax_error(e: tomllib.TOMLDecodeError, text: str, shown: str | Path) -> ConfigError:
    # Python 3.11's TOMLDecodeError has no lineno attribute: the position is only in the text.
    m = _TOML_POSITION.match(str(e))
    if m is None:
        return ConfigError(None, f"invalid TOML: {e}", source=shown)
    if m["line"] is not None:
        line, column = int(m["line"]), int(m["col"])
    else:
        lines = text.split("\n")
        line, column = len(lines), len(lines[-1]) + 1
    return ConfigError(None, f"invalid TOML: {m['msg']}", source=shown, line=line, column=column)


# --- msgspec errors, in the file's terms ----------------------------------------------------------
#
# msgspec's ValidationError carries its path only inside its text: "<what> - at `$.a[2].b`", or
# "<what> - at `key` in `$.a`" when a table's key broke its constraint. This is the one place
# that reads that text; the words for a broken constraint come from the schema's own Meta.

_MSGSPEC_ERROR = re.compile(
    r"^(?P<msg>.*?)(?: - at (?P<in_key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.DOTALL
)
_PATH_SEGMENT = re.compile(r"\.(?P<name>\w+)|\[(?P<index>\d+|\.\.\.)\]")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "a boolean",
    "array": "an array",
    "object": "a table",
    "Path": "a path",
    "datetime": "a date-time",
    "date": "a date",
    "time": "a time",
}


def translate(
    error: msgspec.ValidationError,
    data: Any,
    *,
    root: Any,
    prefix: str = "",
    hidden: Mapping[Any, frozenset[str]] | None = None,
    dec_hook: DecHook | None = None,
) -> ConfigError:
    """msgspec's ``Expected `int` >= 1 - at `$.channels[2].burst` `` as a ConfigError."""
    m = _MSGSPEC_ERROR.match(str(error))
    assert m is not None  # the pattern matches any string
    message, path = m["msg"], m["path"] or ""
    # Walk the path through the data (for the value shown) and the schema (for the valid keys
    # and the constraints).
    key, tp, node = prefix, root, data
    for seg in _PATH_SEGMENT.finditer(path):
        bare, _ = _unwrap(tp)
        if seg["name"] is not None:
            key = join_key(key, seg["name"])
            tp = _struct_fields(bare).get(seg["name"], Any)
            node = node.get(seg["name"]) if isinstance(node, dict) else None
        elif seg["index"] == "...":
            # msgspec does not say which entry of a table failed; find it ourselves.
            tp = get_args(bare)[1] if get_origin(bare) is dict else Any
            key, node = _first_bad(key, node, tp, keys=False, dec_hook=dec_hook)
        else:
            index = int(seg["index"])
            key += f"[{index}]"
            tp = get_args(bare)[0] if get_origin(bare) in (tuple, list) else Any
            node = node[index] if isinstance(node, list) and index < len(node) else None
    if m["in_key"]:
        bare, _ = _unwrap(tp)
        tp = get_args(bare)[0] if get_origin(bare) is dict else Any
        key, node = _first_bad(key, node, tp, keys=True, dec_hook=dec_hook)
    tp, metas = _unwrap(tp)
    shown = None if key.endswith("_env") else _show(node)  # an *_env value may be a secret

    if found := re.match(r"Object contains unknown field `(.*)`", message):
        name = found[1]
        # Fields the loader fills in (`Config.source`) are no keys a user could have meant.
        unlisted = (hidden or {}).get(tp, frozenset())
        known = [k for k in _struct_fields(tp) if k not in unlisted]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "known: " + ", ".join(known)
        return ConfigError(join_key(key, name), f"unknown key ({hint})")
    if found := re.match(r"Object missing required field `(.*)`", message):
        return ConfigError(join_key(key, found[1]), "required key is missing")
    if (found := re.match(r"Invalid enum value (.*)", message)) and get_args(tp):
        choices = ", ".join(repr(c) for c in get_args(tp))
        return ConfigError(key or None, f"must be one of {choices}, got {found[1]}")
    if found := re.match(r"Expected `(.*)`, got `(.*)`", message):
        expected, got = _describe_types(found[1]), _describe_types(found[2])
        shown = f" ({shown})" if shown is not None else ""
        return ConfigError(key or None, f"expected {expected}, got {got}{shown}")
    if message.startswith("Expected `") and (rule := _rule_words(metas, node)):
        got = f", got {shown}" if shown is not None and rule != "must not be empty" else ""
        return ConfigError(key or None, rule + got)
    # A dec_hook or __post_init__ ValueError: its own words, at the key of its value or Struct.
    return ConfigError(key or None, message)


def _unwrap(tp: Any) -> tuple[Any, list[msgspec.Meta]]:
    """`tp` without ``| None`` and ``Annotated``, and the Metas those carried."""
    metas: list[msgspec.Meta] = []
    while True:
        if get_origin(tp) in (Union, UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp, metas
            tp = args[0]
        elif get_origin(tp) is Annotated:
            tp, *extras = get_args(tp)
            metas += [x for x in extras if isinstance(x, msgspec.Meta)]
        else:
            return tp, metas


def _rule_words(metas: Sequence[msgspec.Meta], value: object) -> str | None:
    """The constraints of `metas`, which `value` broke, in plain words ("must be >= 1")."""
    for meta in metas:
        if meta.pattern is not None:
            return f"must be {meta.description or f'a string matching {meta.pattern!r}'}"

    def bound(name: str) -> Any:
        return next((v for meta in metas if (v := getattr(meta, name)) is not None), None)

    ge, gt, le, lt = bound("ge"), bound("gt"), bound("le"), bound("lt")
    shortest, longest, step = bound("min_length"), bound("max_length"), bound("multiple_of")
    if shortest is not None or longest is not None:
        if shortest == 1 and longest is None:
            return "must not be empty"
        unit = "characters" if isinstance(value, str) else "entries"
        if longest is None:
            return f"must have at least {shortest} {unit}"
        return f"must have {shortest or 0} to {longest} {unit}"
    if step is not None:
        return f"must be a multiple of {step}"
    finite = le == FINITE  # a bound that only refuses inf: say "finite", not the number
    if ge is not None and le is not None and not finite:
        return f"must be between {ge} and {le}"
    pairs = ((">=", ge), (">", gt), ("<=", None if finite else le), ("<", lt))
    bounds = " and ".join(f"{op} {bound}" for op, bound in pairs if bound is not None)
    if not bounds:
        return None  # no constraint msgspec checks that we know of: its own words will do
    return ("must be a finite number " if finite else "must be ") + bounds


def _struct_fields(tp: Any) -> dict[str, Any]:
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return {f.encode_name: f.type for f in msgspec.structs.fields(tp)}
    return {}


def _first_bad(
    key: str, node: Any, tp: Any, *, keys: bool, dec_hook: DecHook | None
) -> tuple[str, Any]:
    """The key path and value of the first entry of table `node` whose key (or value) is no
    `tp`; msgspec reports a table's entries as ``[...]`` only."""
    if isinstance(node, dict):
        for name, value in node.items():
            try:
                msgspec.convert(name if keys else value, tp, dec_hook=dec_hook)
            except msgspec.ValidationError:
                return join_key(key, str(name)), name if keys else value
    return f"{key}[...]", None


def join_key(prefix: str, name: str) -> str:
    # TOML's own spelling of a dotted key, so the key can be searched for in the file.
    part = name if _BARE_KEY.match(name) else json.dumps(name)
    return f"{prefix}.{part}" if prefix else part


def _describe_types(spec: str) -> str:
    words = [_TYPE_WORDS.get(t, t) for t in spec.split(" | ") if t != "null"]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _show(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, int | float):
        return str(value)
    return None
