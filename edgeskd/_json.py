"""One bounded JSON reader for every JSON file edgeskd reads (manifests, configs, reports, agent settings).

Python's json module has no size or depth limit: a 100,000-deep nested array raises RecursionError (a traceback, not
an error message) and a huge file is read whole into memory. Here the size is checked before reading and the
nesting depth is counted by a cheap scan before parsing, so both are refused with a one-line error naming the limit.
The limits match the C runtime's manifest reader (16 MiB, depth 64).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 16 << 20   # the C runtime refuses manifests above this size too
MAX_JSON_DEPTH = 64

# strings (so brackets inside them do not count) or a single bracket
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


class JSONLimitError(ValueError):
    """A JSON text over the size or nesting-depth limit (the message names which)."""


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """The deepest nesting of arrays/objects in `text`; stops early once `limit` is passed."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif token in "]}":
            depth -= 1
    return deepest


def loads_bounded(text: str | bytes, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads with a size and depth limit; raises JSONLimitError or json.JSONDecodeError."""
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > max_bytes:
        raise JSONLimitError(f"{size} bytes is over the {max_bytes}-byte limit for JSON")
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if json_depth(text, max_depth) > max_depth:
        raise JSONLimitError(f"nesting deeper than the limit of {max_depth} levels")
    return json.loads(text)


def read_json(path: str | os.PathLike, error: type[Exception], what: str, *, max_bytes: int = MAX_JSON_BYTES,
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value in a file; every failure (missing, unreadable, too big, too deep, bad JSON) raises `error`
    naming `what` and the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise JSONLimitError(f"{size} bytes is over the {max_bytes}-byte limit for JSON")
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)  # the file may have grown since stat
        return loads_bounded(data, max_bytes=max_bytes, max_depth=max_depth)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError and JSONLimitError are ValueErrors
        raise error(f"cannot read {what} {path}: {exc}") from exc


def read_json_object(path: str | os.PathLike, error: type[Exception], what: str, **limits: int) -> dict[str, Any]:
    """A JSON file that must hold one object; failures raise `error` naming `what` and the file."""
    data = read_json(path, error, what, **limits)
    if not isinstance(data, dict):
        raise error(f"{what} {path} must hold a JSON object; found {type(data).__name__}")
    return data


def parse_json(text: str | bytes, error: type[Exception], what: str, **limits: int) -> Any:
    """json.loads of text from a file header or a request, bounded; failures raise `error` naming `what`."""
    try:
        return loads_bounded(text, **limits)
    except (ValueError, TypeError) as exc:  # JSONDecodeError, JSONLimitError, UnicodeDecodeError, not a string
        raise error(f"{what} is not valid JSON: {exc}") from exc
