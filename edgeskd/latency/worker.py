"""The measurement worker: `python -m edgeskd.latency.worker REQUEST.json RESULT.json`.

One measurement per process, so that no runtime state (thread pools, allocators, JIT caches, another runtime's
threads) leaks between measurements; the parent sets the thread-count environment before this process starts.
The result file holds either {"measurement": ...} or {"error": ..., "type": ...}.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeskd.runtimes.base import MAX_SAMPLES, run_protocol  # noqa: F401  (the one timing loop)


def measure_here(request: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in this process (the parent made sure it is a fresh one) and return its record."""
    from edgeskd._io import sha256_file
    from edgeskd.errors import LatencyError
    from edgeskd.latency.fingerprint import machine_fingerprint
    from edgeskd.latency.measurement import Measurement, settled_verdict, summarize
    from edgeskd.latency.runners import open_runner
    from edgeskd.latency.targets import Target

    target = Target.from_dict(request["target"])
    path, batch = request["path"], int(request["batch"])
    runner = open_runner(path, target, batch)
    fingerprint = machine_fingerprint(target)
    # The fingerprint claims a provider and precision; they must be what the runtime reports using.
    if runner.provider != fingerprint["provider"] or runner.precision != fingerprint["precision"]:
        raise LatencyError(f"{target.name}: runtime reports provider {runner.provider!r} / precision "
                           f"{runner.precision!r}, expected {fingerprint['provider']!r} / {fingerprint['precision']!r}")
    rng = np.random.default_rng(0)
    info: dict[str, Any] = {"target": target.to_dict(), "batch": batch, "input_shape": list(runner.input_shape),
                            "runs": request["runs"], "seconds": request["seconds"], "warmup_s": request["warmup_s"],
                            "runtime_reported": runner.reported, "path": os.path.basename(path)}
    if request.get("preprocess"):
        step = _end_to_end_step(runner, request, target, rng, info)
        mode = "end-to-end"
    else:
        x = rng.standard_normal(runner.input_shape).astype(runner.input_dtype)
        step = lambda: runner.run(x)  # noqa: E731
        mode = "model"
    runs, seconds, settle = int(request["runs"]), float(request["seconds"]), request.get("settle")
    if settle:  # a pilot window first; the rest of the window only when the budget verdict is not yet clear
        samples = run_protocol(step, runs=runs, seconds=float(settle["pilot_s"]), warmup_s=float(request["warmup_s"]))
        info["settled_early"] = settled_verdict(samples, settle)
        if info["settled_early"] is None:
            samples += run_protocol(step, runs=0, seconds=seconds - float(settle["pilot_s"]), warmup_s=0.0)
    else:
        samples = run_protocol(step, runs=runs, seconds=seconds, warmup_s=float(request["warmup_s"]))
    m = Measurement(stats=summarize(samples), samples_ms=samples, fingerprint=fingerprint, mode=mode,
                    artifact_sha256=request.get("artifact_sha256") or sha256_file(path), info=info)
    return m.to_dict()


def _end_to_end_step(runner: Any, request: dict[str, Any], target: Any, rng: np.random.Generator,
                     info: dict[str, Any]) -> Callable[[], Any]:
    """8-bit pixels -> the bundle's preprocessing (edgeskd.data.preprocess, the reference pipeline) -> the model."""
    import torch

    from edgeskd.data.preprocess import PreprocessSpec, preprocess
    from edgeskd.errors import LatencyError

    torch.set_num_threads(target.threads)
    spec = PreprocessSpec.from_dict(request["preprocess"])
    batch, channels, height, width = runner.input_shape
    if (channels, height, width) != (spec.channels, spec.size, spec.size):
        raise LatencyError(f"preprocessing gives ({spec.channels}, {spec.size}, {spec.size}) but the model takes "
                           f"({channels}, {height}, {width})")
    raw_size = int(request.get("raw_size") or 2 * spec.size)
    shape = (raw_size, raw_size) if spec.channels == 1 else (raw_size, raw_size, 3)
    images = [rng.integers(0, 256, size=shape, dtype=np.uint8) for _ in range(batch)]
    info["raw_image_shape"] = list(shape)

    def step() -> Any:
        x = torch.stack([preprocess(img, spec) for img in images]).numpy()
        return runner.run(x)

    return step


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m edgeskd.latency.worker REQUEST.json RESULT.json", file=sys.stderr)
        return 2
    from edgeskd._io import atomic_write_json
    from edgeskd.errors import EdgeskdError

    with open(args[0]) as fh:
        request = json.load(fh)
    try:
        result: dict[str, Any] = {"measurement": measure_here(request)}
        code = 0
    except EdgeskdError as exc:
        result, code = {"error": str(exc), "type": type(exc).__name__}, 2
    except Exception as exc:  # a runtime's own exception types: reported to the parent, never swallowed
        result, code = {"error": f"{type(exc).__name__}: {exc}", "type": "LatencyError"}, 1
    atomic_write_json(args[1], result)
    return code


if __name__ == "__main__":
    sys.exit(main())
