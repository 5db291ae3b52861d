"""Deployment-aware search: combinations filtered by what the runtimes report (mocked and real), deploy choices
through a search and its resume, the objective taken from the artifact, and the latency cache per precision."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
import torch

from edgeskd.errors import SearchError
from edgeskd.search import SearchConfig, run_search
from edgeskd.search.config import space_digest
from edgeskd.search.deployment import (Deployment, DeploySpace, describe_filter, filter_deployments,
                                       evaluate_artifact)
from edgeskd.search.records import COMPLETED, TrialRecord
from edgeskd.search.space import parse_space

HERE = Path(__file__).parent
DEPLOY_SPACE = str((HERE / "deploy_space.yaml").resolve())
sys.path.insert(0, str(HERE))
from search_fakes import fake_stages, read_log  # noqa: E402

# What OpenVINO reports on an AMX/AVX512-FP16 Xeon and on an AVX2-only EPYC, as adapter reports.
XEON = {"onnxruntime": {"fp32": "", "int8": "", "bf16": "no bf16 kernels", "fp16": "no fp16 kernels"},
        "openvino": {"fp32": "", "bf16": "", "fp16": "", "int8": ""}}
EPYC = {"onnxruntime": XEON["onnxruntime"],
        "openvino": {"fp32": "", "bf16": "CPU does not report BF16", "fp16": "CPU does not report FP16", "int8": ""}}


def test_combinations_follow_the_reported_capabilities():
    deploy = DeploySpace(("onnxruntime", "openvino"), ("fp32", "bf16", "int8"))
    kept, dropped = filter_deployments(deploy, lambda runtime: XEON[runtime])
    assert [d.label for d in kept] == ["ort:fp32", "ort:int8", "openvino:fp32", "openvino:bf16", "openvino:int8"]
    assert [(d.label, why) for d, why in dropped] == [("ort:bf16", "no bf16 kernels")]
    kept, dropped = filter_deployments(deploy, lambda runtime: EPYC[runtime])
    assert "openvino:bf16" not in [d.label for d in kept]
    assert ("openvino:bf16", "CPU does not report BF16") in [(d.label, why) for d, why in dropped]
    lines = describe_filter(kept, dropped)
    assert "deployment dropped: openvino:bf16 (CPU does not report BF16)" in lines


def test_combinations_on_this_machine_match_what_openvino_reports():
    import openvino as ov

    caps = list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    kept, dropped = filter_deployments(DeploySpace(("onnxruntime", "openvino"), ("fp32", "bf16", "fp16")))
    labels = {d.label for d in kept}
    assert {"ort:fp32", "openvino:fp32"} <= labels
    assert ("openvino:bf16" in labels) == ("BF16" in caps)
    assert ("openvino:fp16" in labels) == ("FP16" in caps)
    assert all(why for _, why in dropped)


@pytest.mark.parametrize("deploy, message", [
    ({"runtimes": ["ort"], "precisions": ["int4"]}, "deploy.precisions': unknown precision 'int4'"),
    ({"runtimes": ["onnx-magic"], "precisions": ["fp32"]}, "deploy.runtimes': unknown runtime 'onnx-magic'"),
    ({"runtimes": ["torch"], "precisions": ["fp32"]}, "deploy.runtimes': 'torch' cannot be a deployment"),
    ({"runtimes": ["ort"]}, "deploy.precisions': expected a non-empty list"),
    ({"runtimes": ["ort"], "precisions": ["fp32"], "calibration_images": 0}, "calibration_images': expected"),
])
def test_bad_deploy_sections_name_the_key(deploy, message):
    import yaml

    raw = yaml.safe_load(Path(DEPLOY_SPACE).read_text())
    with pytest.raises(SearchError, match=message.replace("(", r"\(")):
        parse_space({**raw, "deploy": deploy}, "x.yaml")


def _config(run_dir: Path, **kw) -> SearchConfig:
    values = dict(data="fake", teacher="tf_efficientnet_lite0", latency_ms=10.0, trials=4, space=DEPLOY_SPACE,
                  space_sha256=space_digest(DEPLOY_SPACE), study="t", run_dir=str(run_dir),
                  stages="search_fakes:fake_stages", workers=1)
    values.update(kw)
    return SearchConfig(**values)


def _records(run_dir: Path) -> list[TrialRecord]:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run_dir / "study.journal")))
    study = optuna.load_study(study_name="t", storage=storage)
    return [TrialRecord.from_trial(t) for t in study.get_trials()]


def _stages_logging_targets(log: Path, artifact_metric: float | None = None):
    """Fake stages whose latency depends on the runtime (openvino 3x faster) and, optionally, whose artifact
    evaluation returns a value unlike the PyTorch one."""
    import json

    base = fake_stages()

    def measure(model, resolution, target, cache, **kw):
        m = base.measure(model, resolution, target, cache)
        with open(log, "a") as fh:
            fh.write(json.dumps({"event": "target", "name": target.name, "precision": target.precision}) + "\n")
        factor = 1 / 3 if target.runtime == "openvino" else 1.0
        m.stats = {k: v * factor for k, v in m.stats.items()}
        return m

    def evaluate(result, data, deployment, calibration, threads):
        return {"balanced_accuracy": artifact_metric, "accuracy": artifact_metric, "top1_agreement_vs_pytorch": 0.5}

    return replace(base, measure=measure, evaluate_artifact=evaluate if artifact_metric is not None else None)


def test_deploy_choices_are_searched_recorded_and_resumed(tmp_path, monkeypatch, capsys):
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("EDGESKD_FAKE_LOG", str(tmp_path / "fake.jsonl"))
    stages = _stages_logging_targets(log)
    run_search(_config(tmp_path / "run", trials=3), stages=stages)
    assert "deployment kept:    ort:fp32" in capsys.readouterr().err
    run_search(_config(tmp_path / "run", trials=6), stages=stages)  # resume: same study, same deploy choices
    records = [r for r in _records(tmp_path / "run") if r.counted]
    assert len(records) == 6
    assert all(r.deployment and r.deployment["label"] in ("ort:fp32", "openvino:fp32") for r in records)
    targets = [e for e in read_log(log) if e["event"] == "target"]
    assert {t["name"] for t in targets} <= {"ort-cpu", "openvino-cpu"}
    summary = __import__("json").loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["winner"]["deployment"]["label"] in ("ort:fp32", "openvino:fp32")
    # The winner is re-measured on its own deployment's target.
    assert summary["winner"]["target"] == ("openvino-cpu" if summary["winner"]["deployment"]["runtime"] == "openvino"
                                           else "ort-cpu")


def test_objective_is_the_artifact_metric_not_the_pytorch_one(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESKD_FAKE_LOG", str(tmp_path / "fake.jsonl"))
    stages = _stages_logging_targets(tmp_path / "calls.jsonl", artifact_metric=0.123)
    run_search(_config(tmp_path / "run", trials=3, latency_ms=1000.0), stages=stages)
    done = [r for r in _records(tmp_path / "run") if r.outcome == COMPLETED]
    assert done
    for r in done:
        assert r.metric == pytest.approx(0.123)
        assert r.deployment["artifact_metric"] == pytest.approx(0.123)
        assert r.deployment["pytorch_metric"] != pytest.approx(0.123)  # the fake training's own metric
        assert r.deployment["metric_drop"] == pytest.approx(r.deployment["pytorch_metric"] - 0.123, abs=1e-5)


class _ExportsDifferently(torch.nn.Module):
    """Classifies by the first half of the channels in PyTorch, by the second half once exported to ONNX."""

    def forward(self, x):
        pooled = x.mean(dim=(2, 3))
        if torch.onnx.is_in_onnx_export():
            return torch.stack([pooled[:, 1], pooled[:, 0]], dim=1)
        return torch.stack([pooled[:, 0], pooled[:, 1]], dim=1)


def test_evaluate_artifact_scores_what_the_artifact_predicts():
    from edgeskd.data.dataset import ImageSet
    from edgeskd.data.preprocess import PreprocessSpec

    rng = np.random.default_rng(0)
    images, labels = [], []
    for i in range(20):
        img = rng.integers(0, 40, size=(16, 16, 3), dtype=np.uint8)
        img[..., i % 2] = 220  # class 0: bright red channel, class 1: bright green
        images.append(img)
        labels.append(i % 2)
    val = ImageSet(images=images, labels=np.array(labels), classes=["r", "g"], source="synthetic")
    pre = PreprocessSpec(size=16, channels=3)
    metrics = evaluate_artifact(_ExportsDifferently(), val, pre, Deployment("onnxruntime", "fp32"), calibration=None)
    # PyTorch would be 100% right; the artifact swaps the classes, and the metric follows the artifact.
    assert metrics["accuracy"] == pytest.approx(0.0)
    assert metrics["top1_agreement_vs_pytorch"] == pytest.approx(0.0)


def test_latency_cache_keeps_precisions_apart(tmp_path):
    from edgeskd.latency import LatencyCache, get_target, measure_model

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 2)).eval()
    cache = LatencyCache(tmp_path / "cache.sqlite")
    calibration = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    kw = dict(cache=cache, in_chans=3, runs=3, seconds=0.0, warmup_s=0.0)
    fp32 = measure_model(model, 16, get_target("ort-cpu"), **kw)
    int8 = measure_model(model, 16, get_target("ort-cpu:int8"), calibration=calibration, **kw)
    assert fp32.info["cache"] == "miss" and int8.info["cache"] == "miss"
    assert len(cache) == 2
    assert int8.fingerprint["precision"] == "int8" and fp32.fingerprint["precision"] == "fp32"
    again = measure_model(model, 16, get_target("ort-cpu:int8"), calibration=calibration, **kw)
    assert again.info["cache"] == "hit" and again.fingerprint["precision"] == "int8"


@pytest.mark.slow
def test_int8_candidate_end_to_end_on_tiny_data(tmp_path, lite0_teacher, capsys):
    """Real stages: an int8 trial is gated on its quantised artifact, judged through it, and the winner's bundle
    carries it as the primary model with its calibration hash, which `edgeskd verify` re-checks."""
    import json

    from edgeskd.cli import main
    from edgeskd.export import verify_bundle

    run = tmp_path / "run"
    code = main(["search", "--data", "chest-xray-samples", "--teacher", "tf_efficientnet_lite0", "--space",
                 str(HERE / "int8_space.yaml"), "--latency-ms", "500", "--trials", "1", "--run-dir", str(run),
                 "--json"])
    assert code == 0
    err = capsys.readouterr().err
    assert "deployment kept:    openvino:int8" in err and "deployment kept:    ort:int8" in err
    summary = json.loads((run / "summary.json").read_text())
    winner = summary["winner"]
    assert winner["deployment"]["precision"] == "int8"
    assert winner["fingerprint"]["precision"] == "int8"          # re-measured on the int8 artifact
    assert winner["artifact"]["calibration"]["images"] == 8
    manifest = json.loads((run / "bundle" / "manifest.json").read_text())
    primary = manifest["primary"]
    assert (primary["runtime"], primary["precision"]) == (winner["deployment"]["runtime"], "int8")
    assert primary["calibration"]["sha256"] == winner["artifact"]["calibration"]["sha256"]
    assert primary["gate"]["passed"] and primary["accuracy"]["metric_name"] == "balanced_accuracy"
    assert verify_bundle(run / "bundle").to_dict()["ok"]
    assert "validation split is too small" in summary["validation"]["text"]  # 16 demo images


def test_ties_on_the_metric_go_to_the_faster_candidate():
    from edgeskd.search.winner import rank_candidates

    study = optuna.create_study(direction="maximize")
    for number, (value, p95) in enumerate([(0.5, 9.0), (0.5, 3.0), (0.4, 1.0)]):
        trial = study.ask()
        trial.set_user_attr("latency_ms", {"p95": p95, "p50": p95 / 2})
        study.tell(trial, value)
    assert [t.number for t in rank_candidates(study, pareto=False, statistic="p95")] == [1, 0, 2]
