"""Hardware targets: where and how a model is timed.

A target is named on the command line ("ort-cpu", "openvino-cpu:bf16", "tensorrt:fp16", "torch-cuda",
"remote://host:port[/inner-target]") or by a YAML profile (a path, or a profile name under search/targets/, shipped
as the package `edgeskd.profiles`). A profile names a built-in target and sets its defaults:

    target: openvino-cpu      # a built-in name as above (required)
    precision: bf16           # optional; fp32, fp16, bf16 or int8 as the runtime allows
    threads: 1                # CPU threads the runtime may use (fixed before it loads)
    statistic: p95            # the statistic a budget is checked against
    budget_ms: 20             # optional default budget
    options: {}               # runtime-specific (workspace_mib for TensorRT, token_env for remote)
"""

from __future__ import annotations

import importlib.resources
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgeskd.errors import LatencyError

STATISTICS = ("p50", "p90", "p95", "p99", "mean", "min", "max")

# built-in name -> (runtime, default precision, allowed precisions, fixed options)
_BUILTINS: dict[str, tuple[str, str, tuple[str, ...], dict[str, Any]]] = {
    "ort-cpu": ("onnxruntime", "fp32", ("fp32", "int8"), {"provider": "CPUExecutionProvider"}),
    "ort-cuda": ("onnxruntime", "fp32", ("fp32",), {"provider": "CUDAExecutionProvider"}),
    "openvino-cpu": ("openvino", "fp32", ("fp32", "bf16", "fp16", "int8"), {"device": "CPU"}),
    "tensorrt": ("tensorrt", "fp32", ("fp32", "fp16", "int8"), {}),
    "torch-cuda": ("torch", "fp32", ("fp32", "fp16"), {"device": "cuda"}),
    "torch-cpu": ("torch", "fp32", ("fp32",), {"device": "cpu"}),
}
_PRECISION_ALIASES = {"fp32": "fp32", "f32": "fp32", "float32": "fp32", "fp16": "fp16", "f16": "fp16",
                      "float16": "fp16", "half": "fp16", "bf16": "bf16", "bfloat16": "bf16",
                      "int8": "int8", "i8": "int8"}
_PROFILE_KEYS = {"target", "precision", "threads", "statistic", "budget_ms", "options", "description"}
_REMOTE = re.compile(r"^remote://(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]+):(?P<port>\d{1,5})(?:/(?P<inner>.+))?$")


@dataclass(frozen=True)
class Target:
    """A resolved target. `name` is canonical ("openvino-cpu:bf16"), so results from a profile and from the
    equivalent command-line name line up in comparisons."""

    name: str
    runtime: str                    # onnxruntime | openvino | tensorrt | torch | remote
    precision: str                  # fp32 | fp16 | bf16 | int8
    threads: int
    statistic: str = "p95"
    budget_ms: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "runtime": self.runtime, "precision": self.precision, "threads": self.threads,
                "statistic": self.statistic, "budget_ms": self.budget_ms, "options": dict(self.options)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Target:
        try:
            return cls(name=str(data["name"]), runtime=str(data["runtime"]), precision=str(data["precision"]),
                       threads=int(data["threads"]), statistic=str(data.get("statistic", "p95")),
                       budget_ms=data.get("budget_ms"), options=dict(data.get("options") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise LatencyError(f"target record {data!r} is incomplete: {exc}") from exc


def normalise_precision(value: str) -> str:
    try:
        return _PRECISION_ALIASES[str(value).lower()]
    except KeyError:
        raise LatencyError(f"unknown precision {value!r}; expected one of fp32, fp16, bf16, int8") from None


def profiles_dir() -> Path | None:
    """search/targets/ as shipped in the package `edgeskd.profiles`; in an editable install whose finder predates
    that mapping, the same folder in the source checkout."""
    try:
        return Path(str(importlib.resources.files("edgeskd.profiles").joinpath("targets")))
    except ModuleNotFoundError:
        import edgeskd

        candidate = Path(edgeskd.__file__).resolve().parent.parent / "search" / "targets"
        return candidate if candidate.is_dir() else None


def list_targets() -> list[str]:
    """Built-in target names, then profile names (without .yaml) under search/targets/."""
    names = list(_BUILTINS) + ["remote://HOST:PORT[/TARGET]"]
    folder = profiles_dir()
    if folder is not None:
        names += sorted(p.stem for p in folder.glob("*.yaml") if p.stem not in names)
    return names


def get_target(name_or_path: str, *, threads: int | None = None, precision: str | None = None) -> Target:
    """Resolve a target name, a remote URL, a profile name or a YAML profile path; explicit arguments win."""
    spec = str(name_or_path).strip()
    profile_path = _find_profile(spec)
    if profile_path is not None:
        target = _load_profile(profile_path)
    else:
        target = _parse_builtin(spec)
    if threads is not None:
        if int(threads) < 1:
            raise LatencyError(f"threads must be >= 1; got {threads}")
        target = replace(target, threads=int(threads))
    if precision is not None:
        target = _with_precision(target, normalise_precision(precision))
    return target


def _find_profile(spec: str) -> Path | None:
    if spec.endswith((".yaml", ".yml")):
        path = Path(spec)
        if not path.is_file():
            raise LatencyError(f"target profile {spec} does not exist")
        return path
    if ":" in spec or "/" in spec:
        return None
    folder = profiles_dir()
    if folder is not None and (folder / f"{spec}.yaml").is_file():
        return folder / f"{spec}.yaml"
    return None


def _load_profile(path: Path) -> Target:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LatencyError(f"cannot read target profile {path}: {exc}") from exc
    if not isinstance(data, dict) or "target" not in data:
        raise LatencyError(f"target profile {path} must be a mapping with a 'target' key (a built-in target name)")
    unknown = set(data) - _PROFILE_KEYS
    if unknown:
        raise LatencyError(f"target profile {path} has unknown keys {sorted(unknown)}; expected {sorted(_PROFILE_KEYS)}")
    target = _parse_builtin(str(data["target"]))
    if data.get("precision") is not None:
        target = _with_precision(target, normalise_precision(data["precision"]))
    if data.get("threads") is not None:
        if not isinstance(data["threads"], int) or data["threads"] < 1:
            raise LatencyError(f"target profile {path}: threads must be an integer >= 1; got {data['threads']!r}")
        target = replace(target, threads=data["threads"])
    statistic = data.get("statistic") or target.statistic
    if statistic not in STATISTICS:
        raise LatencyError(f"target profile {path}: statistic {statistic!r} is not one of {STATISTICS}")
    budget = data.get("budget_ms")
    if budget is not None and (not isinstance(budget, (int, float)) or budget <= 0):
        raise LatencyError(f"target profile {path}: budget_ms must be a positive number; got {budget!r}")
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise LatencyError(f"target profile {path}: options must be a mapping; got {options!r}")
    return replace(target, statistic=statistic, budget_ms=float(budget) if budget is not None else None,
                   options={**target.options, **options, "profile": str(path)})


def _parse_builtin(spec: str) -> Target:
    remote = _REMOTE.match(spec)
    if remote:
        inner = _parse_builtin(remote["inner"] or "ort-cpu")
        if inner.runtime == "remote":
            raise LatencyError(f"remote target {spec} cannot name another remote target")
        port = int(remote["port"])
        if not 0 < port < 65536:
            raise LatencyError(f"remote target {spec}: port {port} is out of range")
        host = remote["host"]
        return Target(name=f"remote://{host}:{port}/{inner.name}", runtime="remote", precision=inner.precision,
                      threads=inner.threads, options={"url": f"http://{host}:{port}", "device_target": inner.name})
    if spec.startswith("remote:"):
        raise LatencyError(f"remote target {spec!r} must look like remote://HOST:PORT or remote://HOST:PORT/TARGET")
    base, _, precision = spec.partition(":")
    if base not in _BUILTINS:
        raise LatencyError(f"unknown target {spec!r}; expected one of {', '.join(list_targets())} or a .yaml profile")
    runtime, default_precision, _, options = _BUILTINS[base]
    target = Target(name=base, runtime=runtime, precision=default_precision, threads=1, options=dict(options))
    return _with_precision(target, normalise_precision(precision)) if precision else target


def _with_precision(target: Target, precision: str) -> Target:
    if target.runtime == "remote":
        inner = _with_precision(_parse_builtin(target.options["device_target"]), precision)
        url = target.options["url"]
        return replace(target, precision=precision, name=f"remote://{url.removeprefix('http://')}/{inner.name}",
                       options={**target.options, "device_target": inner.name})
    base = target.name.partition(":")[0]
    allowed = _BUILTINS[base][2]
    if precision not in allowed:
        raise LatencyError(f"target {base} does not support precision {precision}; expected one of {allowed}")
    name = base if precision == _BUILTINS[base][1] else f"{base}:{precision}"
    return replace(target, precision=precision, name=name)
