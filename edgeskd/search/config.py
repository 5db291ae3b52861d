"""What a search run is: the user's choices, saved (without secrets) as config.json in the run folder.

The saved copy lets local worker processes start from the same settings, and lets a second run of the same command
check it is resuming the same search rather than silently mixing two. A SearchConfig is frozen: `resolve()` returns
a new, complete one once (space path and digest, study name, run folder) and nothing changes it afterwards.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from edgeskd._io import atomic_write_json
from edgeskd.errors import SearchError

CONFIG_NAME = "config.json"
DEMO_DATA = "chest-xray-samples"
DEMO_TEACHER = "tf_efficientnet_lite0"
# Changing any of these changes what the study means; resuming with a different value is refused.
IDENTITY = ("data", "teacher", "teacher_weights", "target", "latency_ms", "statistic", "space_sha256", "pareto",
            "metric", "seed", "train_fraction", "val_fraction", "test_fraction", "same_size", "dicom_window",
            "teacher_num_classes")


@dataclass(frozen=True)
class SearchConfig:
    data: str = DEMO_DATA
    teacher: str = DEMO_TEACHER
    teacher_weights: str | None = None
    target: str = "ort-cpu"
    latency_ms: float = 20.0
    statistic: str = "p95"
    trials: int | None = None            # finished trials wanted in the whole study (all workers, all resumes)
    timeout: float | None = None         # seconds for this invocation
    space: str = ""                      # resolved path of the space YAML
    space_sha256: str = ""
    pareto: bool = False
    workers: int = 1
    device: str = "auto"                 # where trials train (auto/cpu/cuda/cuda:N); workers spread over the GPUs
    study: str = ""
    run_dir: str = ""
    seed: int = 0
    train_fraction: float = 1.0          # < 1: data-scarce mode, the rest of train is unlabelled (see edgeskd data)
    metric: str = "balanced_accuracy"
    stages: str = "edgeskd.search.stages:real_stages"
    storage_display: str = ""            # masked; the real URL travels to workers in the environment only
    demo: bool = False
    # --- data options shared with `edgeskd data`/`train` (cli/_common.add_data_options) and the teacher's head ----
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    same_size: bool = False
    dicom_window: list[float] | None = None  # [centre, width]; a list so config.json round-trips unchanged
    teacher_num_classes: int | None = None   # None: read from the teacher weight file
    # Deployment-aware search (Python API and --runtimes/--precisions): comma-separated lists that replace the
    # space's deploy: section, e.g. runtimes="ort,openvino", precisions="fp32,int8". Empty: the space decides.
    runtimes: str = ""
    precisions: str = ""

    def __post_init__(self) -> None:
        if self.latency_ms <= 0:
            raise SearchError(f"--latency-ms must be > 0; got {self.latency_ms}")
        if self.trials is not None and self.trials < 1:
            raise SearchError(f"--trials must be >= 1; got {self.trials}")
        if self.timeout is not None and self.timeout <= 0:
            raise SearchError(f"--timeout must be > 0 seconds; got {self.timeout}")
        if self.workers < 1:
            raise SearchError(f"--workers must be >= 1; got {self.workers}")
        if self.statistic not in ("p50", "p90", "p95", "p99", "mean", "max"):
            raise SearchError(f"--statistic must be one of p50, p90, p95, p99, mean, max; got {self.statistic!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def data_fields(options: dict[str, Any]) -> dict[str, Any]:
        """SearchConfig fields from load_dataset() keyword arguments (cli/_common.data_options)."""
        window = options.get("dicom_window")
        return {"train_fraction": options["train_fraction"], "val_fraction": options["val_fraction"],
                "test_fraction": options["test_fraction"], "same_size": not options["allow_mixed_sizes"],
                "dicom_window": [float(v) for v in window] if window else None}

    def data_options(self) -> dict[str, Any]:
        """load_dataset() keyword arguments (seed excluded) for this search's data."""
        return {"train_fraction": self.train_fraction, "val_fraction": self.val_fraction,
                "test_fraction": self.test_fraction, "allow_mixed_sizes": not self.same_size,
                "dicom_window": tuple(self.dicom_window) if self.dicom_window else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def identity(self) -> dict[str, Any]:
        identity = {k: getattr(self, k) for k in IDENTITY}
        # Only when set, so studies started before deployment-aware search keep their identity.
        identity.update({k: getattr(self, k) for k in ("runtimes", "precisions") if getattr(self, k)})
        return identity

    def resolve(self) -> SearchConfig:
        """A copy with what was left empty filled in: the space (the teacher family's, or 'demo' for the demo) as an
        absolute path with its digest, the study name and the run folder. Idempotent; run_search calls it."""
        from edgeskd.search.space import resolve_space

        space, digest = self.space, self.space_sha256
        if not space:
            if self.demo:
                space = "demo"
            else:
                from edgeskd.models import family_of, teacher_architecture

                space = family_of(teacher_architecture(self.teacher), self.teacher)
        if not digest:
            space = str(resolve_space(space).resolve())
            digest = space_digest(space)
        resolved = replace(self, space=space, space_sha256=digest)
        study = self.study or default_study_name(resolved)
        return replace(resolved, study=study, run_dir=str(Path(self.run_dir or Path("runs") / study).resolve()))

    def with_storage(self, display: str) -> SearchConfig:
        """A copy naming the (masked) study storage, for reports and config.json."""
        return replace(self, storage_display=display)


def default_study_name(config: SearchConfig) -> str:
    """Deterministic, so running the same command again finds (and resumes) the same study."""
    data = Path(config.data).name or config.data
    name = f"{config.teacher}-{data}-{config.target}-{config.latency_ms:g}ms" + ("-pareto" if config.pareto else "")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def space_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_or_check(config: SearchConfig, run_dir: Path) -> None:
    """Write config.json, or, when resuming, refuse a run whose identity differs from the saved one."""
    path = run_dir / CONFIG_NAME
    if path.is_file():
        from edgeskd._json import read_json

        try:
            saved = SearchConfig.from_dict(read_json(path, SearchError, "search config"))
        except (TypeError, SearchError) as exc:
            raise SearchError(f"cannot read {path} to resume: {exc}") from exc
        old, new = saved.identity(), config.identity()
        differ = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
        if differ:
            detail = ", ".join(f"{k}: saved {old.get(k)!r}, now {new.get(k)!r}" for k in differ)
            raise SearchError(f"{run_dir} holds a different search ({detail}); give this one its own --study name "
                              f"or --run-dir")
    atomic_write_json(path, config.to_dict())
