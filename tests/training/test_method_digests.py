"""Every training method gives bit-identical results across refactors of the trainer (issue 13, requirement 1).

A short run per method on tiny data records a digest of its metrics, its per-epoch log (losses, learning rates,
validation values) and the tensors of its checkpoint and training state. The expected digests in
method_digests.json were generated from the trainer before the method registry existed (commit b667c0e) with

    .venv/bin/python tests/training/test_method_digests.py --write

Floating-point results depend on the kernels torch picks for the CPU and on the torch version, so the expectation
is keyed by that environment: on another CPU capability or torch version the test skips with the reason (generate
the file there from a trusted commit to compare two commits on that machine).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("edgeskd.selection")

DIGESTS = Path(__file__).with_name("method_digests.json")

# name -> TrainConfig changes; covers every method and the branches of each (unlabelled batches, B's head probe,
# copy-a, resume-sensitive optimizer state is covered by the state digest written after the last epoch)
CASES: dict[str, dict[str, Any]] = {
    "dual-skd": {"method": "dual-skd", "use_unlabelled": True, "b_probe_epochs": 1},
    "dual-skd-copy-a": {"method": "dual-skd", "b_init": "copy-a", "epochs_finetune": 0},
    "dml": {"method": "dml", "use_unlabelled": True},
    "classic-kd": {"method": "classic-kd"},
    "single-ws": {"method": "single-ws", "label_smoothing": 0.1},
    "random-init": {"method": "random-init"},
}


def environment() -> str:
    return f"torch {torch.__version__} / cpu {torch.backends.cpu.get_cpu_capability()} / threads 1"


def _tensor_digest(path: Path) -> str:
    from safetensors.torch import load_file

    h = hashlib.sha256()
    for name, value in sorted(load_file(str(path)).items()):
        h.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        h.update(value.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def run_digest(case: str, splits, spec, teacher, out: Path) -> dict[str, str]:
    from edgeskd.training import TrainConfig, train

    base = dict(epochs_skd=2, epochs_finetune=1, batch_size=32, teacher_epochs=1, eval_batch_size=64,
                restore_best=False)
    if "channels_last" in TrainConfig.__dataclass_fields__:
        # the default memory format is the arithmetic the digests were recorded with; "auto" may pick channels_last,
        # which is a different (equally deterministic) summation order (see docs/training.md, determinism)
        base.update(device="cpu", channels_last="off")
    config = TrainConfig(**{**base, **CASES[case]})
    result = train(spec, splits, teacher, config, out_dir=out, progress=False)
    history = [{k: v for k, v in r.items() if k != "train_seconds"} for r in result.history]
    return {
        "metrics": hashlib.sha256(json.dumps(result.metrics, sort_keys=True).encode()).hexdigest(),
        "history": hashlib.sha256(json.dumps(history, sort_keys=True).encode()).hexdigest(),
        "checkpoint": _tensor_digest(out / "model.safetensors"),
        "state": _tensor_digest(out / "state.safetensors"),
        "val_accuracy": repr(result.metrics["val"]["accuracy"]),
    }


def _expected() -> dict[str, Any]:
    if not DIGESTS.exists():
        pytest.skip(f"{DIGESTS.name} is missing: generate it with python {Path(__file__).name} --write")
    data = json.loads(DIGESTS.read_text())
    if data["environment"] != environment():
        pytest.skip(f"digests were recorded on '{data['environment']}', this is '{environment()}'")
    return data


@pytest.mark.parametrize("case", list(CASES))
def test_method_results_are_bit_identical(case, digits_splits, tiny_spec, lite0_teacher, tmp_path):
    expected = _expected()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        got = run_digest(case, digits_splits, tiny_spec, lite0_teacher, tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert got == expected["cases"][case]


def _write() -> None:
    import subprocess
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import _digits_splits  # noqa: E402 (the same data the fixtures give)

    from edgeskd.models import StudentSpec, load_teacher

    torch.set_num_threads(1)
    splits, spec = _digits_splits(), StudentSpec("tf_efficientnet_lite0", 0.25, 0.25, 32, num_classes=4)
    teacher = load_teacher("tf_efficientnet_lite0")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    cases = {}
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            cases[case] = run_digest(case, splits, spec, teacher, Path(tmp))
        print(case, cases[case]["val_accuracy"], flush=True)
    tmp_path = DIGESTS.with_suffix(".tmp")
    tmp_path.write_text(json.dumps({"environment": environment(), "commit": commit, "cases": cases}, indent=1) + "\n")
    tmp_path.replace(DIGESTS)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit(f"usage: python {Path(__file__).name} --write")
    _write()
