"""`edgeskd search` end to end with the real stages: the real chest X-ray samples, the real EfficientNet-Lite0
ImageNet teacher, real selection + dual-SKD training, real ONNX Runtime latency, real export."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from edgeskd.cli import main

SPACE = str(Path(__file__).with_name("tiny_space.yaml"))


@pytest.fixture(scope="module")
def searched(tmp_path_factory, lite0_teacher):
    run = tmp_path_factory.mktemp("search") / "run"
    code = main(["search", "--data", "chest-xray-samples", "--teacher", "tf_efficientnet_lite0", "--space", SPACE,
                 "--target", "ort-cpu", "--latency-ms", "200", "--trials", "2", "--run-dir", str(run), "--json"])
    return run, code


def test_tiny_real_search_ends_with_a_verified_bundle_and_a_report(searched, capsys):
    run, code = searched
    assert code == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["ok"] and summary["trials"] == 2 and summary["counts"] == {"completed": 2}
    winner = summary["winner"]
    assert winner["budget_ok"] and 0 < winner["latency_ms"]["p95"] <= 200
    assert winner["fingerprint"]["runtime"] == "onnxruntime"
    assert winner["test"]["n"] == 2 and len(winner["confusion_matrix"]) == 2
    manifest = json.loads((run / "bundle" / "manifest.json").read_text())
    assert manifest["labels"] == ["normal", "pneumonia"]
    from edgeskd.export import verify_bundle

    verify_bundle(run / "bundle")
    for name in ("report.md", "report.html", "pareto.png", "confusion.png", "study.journal"):
        assert (run / name).stat().st_size > 0, name


def test_the_study_opens_as_a_plain_optuna_journal(searched):
    run, _ = searched
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(run / "study.journal")))
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    trial = study.best_trial
    assert trial.user_attrs["outcome"] == "completed" and trial.user_attrs["train_seconds"] > 0
    assert set(trial.user_attrs["latency_ms"]) >= {"p50", "p95", "p99"} and trial.user_attrs["macs"] > 0


def test_impossible_budget_exits_non_zero_without_training(tmp_path, capsys, lite0_teacher):
    run = tmp_path / "run"
    code = main(["search", "--data", "chest-xray-samples", "--space", SPACE, "--latency-ms", "0.001",
                 "--trials", "2", "--run-dir", str(run)])
    err = capsys.readouterr().err
    assert code == 2
    assert "no candidate meets the p95 budget of 0.001 ms" in err and "fastest" in err and "nothing was trained" in err
    assert not (run / "trials").exists() and not (run / "bundle").exists()
