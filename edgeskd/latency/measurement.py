"""A latency measurement (statistics, raw samples, fingerprint) and the two decisions made on it: does it meet a
budget, and how does it compare with another."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeskd.errors import LatencyError
from edgeskd.latency.fingerprint import FINGERPRINT_KEYS, fingerprint_diff
from edgeskd.latency.targets import STATISTICS, Target

SCHEMA_VERSION = 1
MODES = ("model", "end-to-end")


def summarize(samples_ms: list[float]) -> dict[str, float]:
    """p50/p90/p95/p99, mean, std, coefficient of variation, min, max (ms) and n of raw per-run samples."""
    if not samples_ms:
        raise LatencyError("no latency samples were taken")
    x = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p95, p99 = np.percentile(x, [50, 90, 95, 99])
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return {"p50": float(p50), "p90": float(p90), "p95": float(p95), "p99": float(p99), "mean": mean, "std": std,
            "cv": std / mean if mean > 0 else 0.0, "min": float(x.min()), "max": float(x.max()), "n": int(x.size)}


@dataclass
class Measurement:
    stats: dict[str, float]      # p50, p90, p95, p99, mean, std, cv, min, max (milliseconds), n
    samples_ms: list[float]
    fingerprint: dict[str, Any]  # FINGERPRINT_KEYS
    mode: str                    # "model" or "end-to-end"
    artifact_sha256: str
    info: dict[str, Any] = field(default_factory=dict)  # target, settings, input shape, what the runtime reported

    def statistic(self, name: str) -> float:
        if name not in STATISTICS:
            raise LatencyError(f"unknown statistic {name!r}; expected one of {STATISTICS}")
        return float(self.stats[name])

    @property
    def target_name(self) -> str:
        return str(self.info.get("target", {}).get("name", self.fingerprint.get("runtime", "?")))

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "mode": self.mode, "artifact_sha256": self.artifact_sha256,
                "stats": dict(self.stats), "fingerprint": dict(self.fingerprint), "info": dict(self.info),
                "samples_ms": [round(float(s), 6) for s in self.samples_ms]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        if not isinstance(data, dict):
            raise LatencyError(f"a measurement record must be a JSON object; got {type(data).__name__}")
        missing = {"stats", "samples_ms", "fingerprint", "mode", "artifact_sha256"} - set(data)
        if missing:
            raise LatencyError(f"measurement record lacks {sorted(missing)}")
        if data.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
            raise LatencyError(f"measurement schema_version {data['schema_version']} is not {SCHEMA_VERSION}")
        if data["mode"] not in MODES:
            raise LatencyError(f"measurement mode {data['mode']!r} is not one of {MODES}")
        missing_stats = set(STATISTICS) - set(data["stats"])
        if missing_stats:
            raise LatencyError(f"measurement stats lack {sorted(missing_stats)}")
        return cls(stats=dict(data["stats"]), samples_ms=[float(s) for s in data["samples_ms"]],
                   fingerprint=dict(data["fingerprint"]), mode=str(data["mode"]),
                   artifact_sha256=str(data["artifact_sha256"]), info=dict(data.get("info") or {}))


def check_budget(m: Measurement, budget_ms: float, statistic: str = "p95", *, target: Target | None = None,
                 force: bool = False) -> tuple[bool, str]:
    """(passed, one-line reason). With `target`, the measurement must have been made on that target (runtime,
    precision, threads from its fingerprint) unless `force`: gating a CPU number against a GPU target is an error."""
    if not budget_ms or budget_ms <= 0:
        raise LatencyError(f"latency budget must be a positive number of milliseconds; got {budget_ms!r}")
    if target is not None and not force:
        expected = {"runtime": target.runtime, "precision": target.precision, "threads": target.threads}
        if target.runtime == "remote":
            expected.pop("runtime")
        wrong = {k: (m.fingerprint.get(k), v) for k, v in expected.items() if m.fingerprint.get(k) != v}
        if wrong:
            raise LatencyError(f"measurement was not made on target {target.name}: "
                               + ", ".join(f"{k} {a!r} != {b!r}" for k, (a, b) in wrong.items()))
    value = m.statistic(statistic)
    where = f"{m.target_name} ({m.mode}, n={m.stats.get('n')})"
    if value <= budget_ms:
        return True, f"{statistic} {value:.3f} ms <= budget {budget_ms:g} ms on {where}"
    return False, f"{statistic} {value:.3f} ms > budget {budget_ms:g} ms on {where}"


# A budget decision that needs no full window: after `pilot_s` of timed runs, a statistic at least `margin` times
# over the budget (or `margin` times under it) is a verdict the remaining runs would not overturn on a quiet
# machine; only candidates near the budget get the full protocol. Used by the search's latency map, which only
# needs over/under (the winner is always measured again with the full protocol).
SETTLE_KEYS = ("budget_ms", "statistic", "margin", "pilot_s")


def check_settle(settle: dict[str, Any], *, seconds: float) -> dict[str, Any]:
    """Validated early-settle settings: budget_ms > 0, statistic one of STATISTICS, margin > 1, 0 < pilot_s <=
    seconds (the pilot is part of the full window, never longer)."""
    import math

    if not isinstance(settle, dict) or set(settle) != set(SETTLE_KEYS):
        raise LatencyError(f"settle must be a mapping with exactly {list(SETTLE_KEYS)}; got {settle!r}")
    budget, margin, pilot = (float(settle[k]) for k in ("budget_ms", "margin", "pilot_s"))
    if not (math.isfinite(budget) and budget > 0):
        raise LatencyError(f"settle budget_ms must be a positive number of milliseconds; got {settle['budget_ms']!r}")
    if settle["statistic"] not in STATISTICS:
        raise LatencyError(f"settle statistic {settle['statistic']!r} is not one of {STATISTICS}")
    if not (math.isfinite(margin) and margin > 1):
        raise LatencyError(f"settle margin must be a number > 1; got {settle['margin']!r}")
    if not (0 < pilot <= seconds):
        raise LatencyError(f"settle pilot_s must be > 0 and at most the window ({seconds:g} s); got {settle['pilot_s']!r}")
    return {"budget_ms": budget, "statistic": str(settle["statistic"]), "margin": margin, "pilot_s": pilot}


def settled_verdict(samples_ms: list[float], settle: dict[str, Any]) -> dict[str, Any] | None:
    """{"verdict": "over"|"under", "value_ms", "ratio", "n"} when the pilot samples already decide the budget by the
    margin; None when the statistic is within the margin and the full window must run."""
    value = summarize(samples_ms)[settle["statistic"]]
    ratio = value / settle["budget_ms"]
    if settle["margin"] > ratio > 1 / settle["margin"]:
        return None
    return {"verdict": "over" if ratio > 1 else "under", "value_ms": value, "ratio": round(ratio, 4),
            "n": len(samples_ms), "pilot_s": settle["pilot_s"], "margin": settle["margin"]}


def compare(a: Measurement, b: Measurement, *, force: bool = False) -> dict[str, Any]:
    """Ratios a/b per statistic (> 1: a is slower). Different fingerprints or modes are an error unless `force`."""
    diff = fingerprint_diff(a.fingerprint, b.fingerprint)
    if a.mode != b.mode:
        diff["mode"] = (a.mode, b.mode)
    if diff and not force:
        detail = "; ".join(f"{k}: {x!r} vs {y!r}" for k, (x, y) in diff.items())
        raise LatencyError(f"cannot compare measurements with different fingerprints ({detail}); use force to override")
    ratios = {s: (a.statistic(s) / b.statistic(s) if b.statistic(s) > 0 else float("inf")) for s in STATISTICS}
    return {"ratios": ratios, "a": {s: a.statistic(s) for s in STATISTICS}, "b": {s: b.statistic(s) for s in STATISTICS},
            "fingerprint_diff": {k: list(v) for k, v in diff.items()}, "forced": bool(diff)}


__all__ = ["Measurement", "summarize", "check_budget", "check_settle", "settled_verdict", "compare", "FINGERPRINT_KEYS", "MODES"]
