"""Opening a model for a latency target, used only inside the measurement worker process (edgeskd.latency.worker).

The runtimes themselves are driven by the adapters in edgeskd.runtimes (shared with export and parity); this module
only maps a Target (runtime, precision, threads, options) onto its adapter.
"""

from __future__ import annotations

from edgeskd.errors import LatencyError
from edgeskd.latency.targets import Target
from edgeskd.runtimes import Runner, get_adapter
from edgeskd.runtimes.base import onnx_input_shape

__all__ = ["Runner", "open_runner", "onnx_input_shape"]


def open_runner(path: str, target: Target, batch: int) -> Runner:
    if target.runtime == "remote":
        raise LatencyError(f"runtime {target.runtime!r} cannot be measured in a local worker")
    adapter = get_adapter(target.runtime)
    return adapter.open(path, precision=target.precision, threads=target.threads, batch=batch,
                        options=target.options)
