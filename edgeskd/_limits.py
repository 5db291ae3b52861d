"""Resource bounds, with defaults that fit an 8 GB edge device, checked where a value enters (CLI flag, agent
request, profile). Each refusal is one line that names the value, the limit and the flag that raises it.

Why: nothing bounded threads or batch before; `{"threads": 100000}` to the agent reached 3.3 GB and
`{"batch": 100000}` 5 GB before the process was killed. Every number here is also checked to be finite.
"""

from __future__ import annotations

import math
import os
from typing import Any

from edgeskd.errors import EdgeskdError

MAX_BATCH = 256            # a 224x224x3 fp32 batch of 256 is ~150 MB of input, well inside 8 GB
MAX_IMAGE_SIDE = 4096      # a 4096x4096 8-bit RGB image is 48 MiB; larger is not a bedside input
MAX_RUNS = 1_000_000
MAX_SECONDS = 3600.0       # one measurement's minimum duration / warm-up
MAX_WARMUP_S = 600.0


def online_cores() -> int:
    """CPU cores this process may run on (affinity where the OS reports it, else all online cores)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _number(value: Any, name: str, error: type[Exception], integer: bool) -> float:
    if isinstance(value, bool):
        raise error(f"{name} must be a number; got {value!r}")
    if not isinstance(value, (int, float)):
        try:
            value = float(value) if not integer else int(value)
        except (TypeError, ValueError):
            raise error(f"{name} must be {'an integer' if integer else 'a number'}; got {value!r}") from None
    if not math.isfinite(value):
        raise error(f"{name} must be a finite number; got {value!r}")
    if integer and value != int(value):
        raise error(f"{name} must be an integer; got {value!r}")
    return value


def check_range(value: Any, name: str, *, low: float, high: float, error: type[Exception] = EdgeskdError,
                integer: bool = False, raise_with: str = "", low_open: bool = False) -> Any:
    """`value` as int/float, refused unless finite and in [low, high] ((low, high] with low_open)."""
    number = _number(value, name, error, integer)
    if number < low or (low_open and number == low):
        raise error(f"{name} must be {'>' if low_open else '>='} {low:g}; got {value!r}")
    if number > high:
        hint = f" ({raise_with} raises it)" if raise_with else ""
        raise error(f"{name} {value!r} is over the limit of {high:g}{hint}")
    return int(number) if integer else float(number)


def check_threads(threads: Any, *, force: bool = False, name: str = "threads", error: type[Exception] = EdgeskdError,
                  raise_with: str = "--force-threads") -> int:
    """At most the cores this machine has, unless forced (oversubscribing only slows a measurement down)."""
    cores = online_cores()
    return check_range(threads, name, low=1, high=10_000 if force else cores, integer=True, error=error,
                       raise_with="" if force else raise_with)


def check_batch(batch: Any, *, limit: int = MAX_BATCH, name: str = "batch", error: type[Exception] = EdgeskdError,
                raise_with: str = "--max-batch") -> int:
    return check_range(batch, name, low=1, high=limit, integer=True, error=error, raise_with=raise_with)


def check_image_side(side: Any, *, limit: int = MAX_IMAGE_SIDE, name: str = "image side",
                     error: type[Exception] = EdgeskdError, raise_with: str = "--max-image-side") -> int:
    return check_range(side, name, low=1, high=limit, integer=True, error=error, raise_with=raise_with)


def check_finite(value: Any, name: str, error: type[Exception] = EdgeskdError) -> float:
    return float(_number(value, name, error, integer=False))


def check_measure_settings(settings: dict[str, Any], *, error: type[Exception] = EdgeskdError,
                           max_seconds: float = MAX_SECONDS, max_batch: int = MAX_BATCH,
                           max_image_side: int = MAX_IMAGE_SIDE, force_threads: bool = False,
                           hints: dict[str, str] | None = None) -> dict[str, Any]:
    """Check the numeric settings of one measurement (bench flags or an agent request); returns them normalised.

    Keys checked when present and not None: threads, batch, runs, seconds, warmup_s, raw_size, timeout_s.
    `hints` names what raises a limit (default: bench's flags), e.g. {"batch": "agent serve --max-batch"}.
    """
    hint = {"threads": "--force-threads", "batch": "--max-batch", "raw_size": "--max-image-side", **(hints or {})}
    out = dict(settings)
    checks = {
        "threads": lambda v: check_threads(v, force=force_threads, error=error, raise_with=hint["threads"]),
        "batch": lambda v: check_batch(v, limit=max_batch, error=error, raise_with=hint["batch"]),
        "runs": lambda v: check_range(v, "runs", low=1, high=MAX_RUNS, integer=True, error=error),
        "seconds": lambda v: check_range(v, "seconds", low=0, high=max_seconds, error=error),
        "warmup_s": lambda v: check_range(v, "warmup_s", low=0, high=min(MAX_WARMUP_S, max_seconds), error=error),
        "raw_size": lambda v: check_image_side(v, limit=max_image_side, name="raw_size", error=error,
                                                raise_with=hint["raw_size"]),
        "timeout_s": lambda v: check_range(v, "timeout_s", low=0, high=max(max_seconds, 86400.0), error=error,
                                           low_open=True),
    }
    for key, check in checks.items():
        if out.get(key) is not None:
            out[key] = check(out[key])
    return out
