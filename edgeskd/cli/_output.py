"""Writing a command's results: an OSError while writing becomes one OutputError line (exit 2), never a traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from edgeskd.errors import OutputError


@contextlib.contextmanager
def writing(what: str) -> Iterator[None]:
    """Turn an OSError raised while writing `what` into an OutputError naming it and the file."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(describe(exc, what)) from exc


def describe(exc: OSError, what: str = "output") -> str:
    where = f" {exc.filename}" if exc.filename else ""
    return f"cannot write {what}{where}: {exc.strerror or exc}"
