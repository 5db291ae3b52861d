"""Search efficiency (issue 14) with the fast fake stages: the latency map, refused and reused trials not counted
against --trials, the sampler chosen in the space YAML, and a resumed or K-worker search measuring nothing twice.

Fake latency = 40 ms * depth * width * (resolution / 64)^2 (tests/search/search_fakes.py).
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from edgeskd.errors import SearchError
from edgeskd.search import SearchConfig, run_search
from edgeskd.search.config import space_digest
from edgeskd.search.records import REFUSED, REUSED, TrialRecord, counted
from edgeskd.search.sampler import make_sampler
from edgeskd.search.space import ARCHITECTURE, load_space

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from search_fakes import fake_latency, fake_stages, read_log  # noqa: E402

FAKE_SPACE = (HERE / "fake_space.yaml").read_text()


def _space(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return str(path.resolve())


def _config(run_dir: Path, space: str, **kw) -> SearchConfig:
    values = dict(data="fake", teacher="tf_efficientnet_lite0", latency_ms=10.0, trials=6, space=space,
                  space_sha256=space_digest(space), study="t", run_dir=str(run_dir),
                  stages="search_fakes:fake_stages", workers=1)
    values.update(kw)
    return SearchConfig(**values)


def _study(run_dir: Path, name: str = "t"):
    storage = JournalStorage(JournalFileBackend(str(run_dir / "study.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def _trained_shapes(log: Path) -> list[tuple]:
    return [(e["depth"], e["width"], e["resolution"]) for e in read_log(log)
            if e["event"] == "train" and "/trials/" in e["out_dir"]]


@pytest.fixture
def fake_log(tmp_path, monkeypatch):
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("EDGESKD_FAKE_LOG", str(log))
    return log


def test_latency_map_offers_only_under_budget_architectures(tmp_path, fake_log):
    space = str((HERE / "fake_space.yaml").resolve())
    run = tmp_path / "run"
    summary = run_search(_config(run, space, trials=8), stages=fake_stages(), show_progress=False)
    lmap = json.loads((run / "latency_map.json").read_text())
    assert lmap["complete"] and lmap["size"] == 18 == len(load_space(space).architectures())
    assert 0 < lmap["measured"] < 18                        # the rest follow by dominance
    for e in lmap["entries"]:  # the map holds what was measured or inferred, and the right budget decision
        s = e["student"]
        truth = fake_latency(s["depth"], s["width"], s["resolution"])
        assert e["ok"] is (truth <= 10)
        if e["inferred_from"] is None:
            assert e["latency_ms"]["p95"] == pytest.approx(truth)
    feasible = {e["key"] for e in lmap["entries"] if e["ok"]}
    assert 0 < len(feasible) < 18
    trials = _study(run).get_trials()
    # the sampler's only student dimension is a choice among the under-budget architectures
    for t in trials:
        assert set(t.distributions[ARCHITECTURE].choices) == feasible and t.params[ARCHITECTURE] in feasible
    assert summary["trained"] == 8 and summary["refused"] == 0
    assert all(fake_latency(*shape) <= 10 for shape in _trained_shapes(fake_log))
    # all measuring happened before the first training (plus the winner's two re-measurements)
    events = [e["event"] for e in read_log(fake_log)]
    n = lmap["measured"]
    assert events[:n] == ["measure"] * n and events[n] == "train"
    assert summary["time"]["map_seconds"] > 0 and "Latency map" in (run / "report.md").read_text()
    assert (run / "latency_map.png").stat().st_size > 0


def test_map_settles_clear_candidates_after_the_pilot_and_measures_near_budget_ones_fully(tmp_path, fake_log):
    from edgeskd.search.latency_map import SETTLE_MARGIN

    space = str((HERE / "fake_space.yaml").resolve())
    run_search(_config(tmp_path / "run", space, trials=2), stages=fake_stages(), show_progress=False)
    lmap = json.loads((tmp_path / "run" / "latency_map.json").read_text())
    measured = [e for e in lmap["entries"] if e["inferred_from"] is None]
    for e in measured:  # budget 10 ms: settled exactly when the latency is outside [10 / margin, 10 * margin]
        ratio = e["latency_ms"]["p95"] / 10.0
        assert e["settled_early"] is (not 1 / SETTLE_MARGIN < ratio < SETTLE_MARGIN), e
        assert ("settled after" in e["reason"]) is e["settled_early"]
    assert lmap["settled_early"] == sum(e["settled_early"] for e in measured) > 0
    map_calls = [e for e in read_log(fake_log) if e["event"] == "measure"][:len(measured)]
    assert all(c["settle"]["budget_ms"] == 10.0 and c["settle"]["statistic"] == "p95" for c in map_calls)
    # the winner's re-measurement before its final training is the full protocol
    assert [e for e in read_log(fake_log) if e["event"] == "measure"][-1]["settle"] is None


def test_pareto_map_measures_every_candidate_with_the_full_protocol(tmp_path, fake_log):
    space = str((HERE / "fake_space.yaml").resolve())
    run_search(_config(tmp_path / "run", space, trials=2, pareto=True), stages=fake_stages(), show_progress=False)
    calls = [e for e in read_log(fake_log) if e["event"] == "measure"]
    assert calls and all(c["settle"] is None for c in calls)  # latency is an objective there: no pilot numbers


def test_two_workers_measure_each_candidate_once_in_total(tmp_path, monkeypatch):
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("EDGESKD_FAKE_LOG", str(log))
    monkeypatch.setenv("EDGESKD_FAKE_STEP_S", "0.05")
    space = str((HERE / "fake_space.yaml").resolve())
    run = tmp_path / "run"
    summary = run_search(_config(run, space, trials=6, workers=2), show_progress=False)
    events = read_log(log)
    trainings = [e for e in events if e["event"] == "train" and "/trials/" in e["out_dir"]]
    trainers = {e["pid"] for e in trainings}
    assert len(trainers) == 2 and os.getpid() not in trainers          # both workers trained trials
    # --trials 6 is six trainings in total, not six per worker or six plus the ones running when the sixth finished
    assert len(trainings) == summary["trained"] == 6
    measures = [e for e in events if e["event"] == "measure"]
    assert {e["pid"] for e in measures} == {os.getpid()}               # the workers measured nothing
    per_shape = Counter(tuple(e["shape"]) for e in measures)
    w = summary["winner"]["student"]
    winner_shape = (w["depth"], w["width"], w["resolution"])
    lmap = json.loads((run / "latency_map.json").read_text())
    assert lmap["size"] == 18 and lmap["measured"] == len(set(per_shape) - {winner_shape}) + \
        (winner_shape in {tuple(e["student"][k] for k in ("depth", "width", "resolution"))
                          for e in lmap["entries"] if e["inferred_from"] is None})
    assert all(n == 1 for shape, n in per_shape.items() if shape != winner_shape)  # each candidate once
    assert per_shape[winner_shape] in (2, 3)                            # + confirm and final re-measurement
    assert summary["trained"] >= 6


def test_refused_candidates_are_not_counted_and_teach_the_sampler(tmp_path, fake_log):
    # a numeric resolution range makes the space continuous: the map is a sample and the sampler sees every
    # architecture, so known-over-budget ones are refused (not built, not trained, not counted)
    space = _space(tmp_path, "cont", FAKE_SPACE.replace("resolution: {choices: [32, 64]}",
                                                        "resolution: {low: 32, high: 64, step: 32}"))
    run = tmp_path / "run"
    summary = run_search(_config(run, space, trials=6, latency_ms=5.0), stages=fake_stages(), show_progress=False)
    assert not json.loads((run / "latency_map.json").read_text())["complete"]
    records = [TrialRecord.from_trial(t) for t in _study(run).get_trials()]
    refused = [r for r in records if not r.counted and r.outcome != "interrupted"]
    assert refused, "seed 0 draws over-budget architectures in this space"
    assert sum(r.counted for r in records) == summary["trained"] == 6
    assert all(r.train_seconds == 0.0 and r.latency_ms["p95"] > 5.0 for r in refused)
    assert all(fake_latency(*shape) <= 5.0 for shape in _trained_shapes(fake_log))
    assert len(_trained_shapes(fake_log)) == 6
    # the sampler was told: every refused trial carries a positive latency constraint
    for t in _study(run).get_trials():
        if TrialRecord.from_trial(t).outcome == REFUSED:
            assert max(t.constraints.values()) > 0
    assert summary["refused"] == len(refused)


def test_duplicate_configuration_is_reused_not_retrained_and_resume_measures_nothing(tmp_path, fake_log):
    space = _space(tmp_path, "dup", FAKE_SPACE.replace("lr: {low: 1.0e-3, high: 3.0e-3, log: true}",
                                                       "lr: {choices: [1.0e-3, 2.0e-3]}"))
    run = tmp_path / "run"
    first = run_search(_config(run, space, trials=2), stages=fake_stages(), show_progress=False)
    study = _study(run)
    original = [t for t in study.get_trials() if counted(t)][0]
    study.enqueue_trial(original.params)                    # the same full configuration again
    trained_before = len(_trained_shapes(fake_log))
    measured_before = sum(e["event"] == "measure" for e in read_log(fake_log))
    second = run_search(_config(run, space, trials=3), stages=fake_stages(), show_progress=False)
    records = [TrialRecord.from_trial(t) for t in _study(run).get_trials()]
    reused = [r for r in records if r.outcome == REUSED]
    assert reused and reused[0].reused_from == original.number and reused[0].train_seconds == 0.0
    assert sum(r.counted for r in records) == second["trained"] == 3
    assert second["reused"] == len(reused)
    assert len(_trained_shapes(fake_log)) - trained_before == 1          # only the one new trial trained
    assert first["latency_map"]["measured_here"] == first["latency_map"]["measured"] > 0
    assert second["latency_map"]["measured_here"] == 0
    # the resumed run measured only the winner again (confirm + final), never the map
    assert sum(e["event"] == "measure" for e in read_log(fake_log)) - measured_before == 2


@pytest.mark.parametrize("kind,cls", [("tpe", "TPESampler"), ("random", "RandomSampler"), ("gp", "GPSampler")])
def test_sampler_is_chosen_in_the_space_yaml(tmp_path, fake_log, kind, cls):
    space = _space(tmp_path, kind, FAKE_SPACE + f"sampler: {kind}\n")
    assert load_space(space).sampler == kind
    sampler = make_sampler(kind, seed=0, statistic="p95", budget_ms=10.0)
    assert type(sampler).__name__ == cls
    summary = run_search(_config(tmp_path / "run", space, trials=6), stages=fake_stages(), show_progress=False)
    assert summary["ok"] and summary["trained"] == 6


def test_default_sampler_is_tpe_and_bad_choices_name_the_key(tmp_path):
    assert load_space(str((HERE / "fake_space.yaml").resolve())).sampler == "tpe"
    with pytest.raises(SearchError, match="key 'sampler'.*tpe, random, gp, cmaes.*'annealing'"):
        load_space(_space(tmp_path, "bad", FAKE_SPACE + "sampler: annealing\n"))
    only_choices = FAKE_SPACE.replace("lr: {low: 1.0e-3, high: 3.0e-3, log: true}", "lr: 2.0e-3")
    with pytest.raises(SearchError, match="cmaes needs at least one numeric range"):
        load_space(_space(tmp_path, "cma", only_choices + "sampler: cmaes\n"))


def test_cmaes_sampler_runs_where_it_fits(tmp_path, fake_log):
    pytest.importorskip("cmaes", reason="sampler: cmaes needs the cmaes package (pip install 'edgeskd[cmaes]')")
    space = _space(tmp_path, "cma", FAKE_SPACE + "sampler: cmaes\n")
    assert type(make_sampler("cmaes", seed=0, statistic="p95", budget_ms=10.0)).__name__ == "CmaEsSampler"
    summary = run_search(_config(tmp_path / "run", space, trials=4), stages=fake_stages(), show_progress=False)
    assert summary["ok"] and summary["trained"] == 4
    with pytest.raises(SearchError, match="cmaes cannot optimise two objectives"):
        run_search(_config(tmp_path / "p", space, trials=2, pareto=True, study="p"), stages=fake_stages(),
                   show_progress=False)


INT8_FACTOR = 0.25   # the fake int8 artifact is 4x faster than fp32


def _int8_stages(log: Path):
    """Fake stages whose latency depends on the precision (int8 4x faster), logging target and calibration."""
    from dataclasses import replace

    base = fake_stages()

    def measure(model, resolution, target, cache, **kw):
        m = base.measure(model, resolution, target, cache)
        with open(log, "a") as fh:
            fh.write(json.dumps({"event": "target", "precision": target.precision,
                                 "calibration": kw.get("calibration")}) + "\n")
        factor = INT8_FACTOR if target.precision == "int8" else 1.0
        m.stats = {k: v * factor for k, v in m.stats.items()}
        return m

    return replace(base, measure=measure)


def test_latency_map_covers_architecture_x_deployment_and_refuses_over_budget_pairs(tmp_path, fake_log,
                                                                                    monkeypatch):
    from edgeskd.search.objective import SearchContext

    # The calibration set itself is the real one in other tests; the fake data has no images to draw it from.
    monkeypatch.setattr(SearchContext, "calibration",
                        lambda self, deployment, pre: "calibration" if deployment.precision == "int8" else None)
    space = _space(tmp_path, "deploy", FAKE_SPACE.replace("depth: {choices: [0.25, 0.5, 1.0]}",
                                                          "depth: {choices: [0.25, 0.5]}")
                   .replace("width: {choices: [0.25, 0.5, 1.0]}", "width: {choices: [0.5, 1.0]}")
                   .replace("resolution: {choices: [32, 64]}", "resolution: {choices: [64, 128]}")
                   + "deploy:\n  runtimes: [ort]\n  precisions: [fp32, int8]\n")
    # fp32: r64 5/10/10/20 ms, r128 20/40/40/80; int8 a quarter of that; budget 8 ms
    budget, run, targets = 8.0, tmp_path / "run", tmp_path / "targets.jsonl"
    summary = run_search(_config(run, space, trials=8, latency_ms=budget), stages=_int8_stages(targets),
                         show_progress=False)
    lmap = json.loads((run / "latency_map.json").read_text())
    assert lmap["complete"] and lmap["size"] == 16 == 2 * len(load_space(space).architectures())
    assert lmap["deployments"] == ["onnxruntime:fp32", "onnxruntime:int8"]

    def truth(student, deployment):
        ms = fake_latency(student["depth"], student["width"], student["resolution"])
        return ms * (INT8_FACTOR if deployment["precision"] == "int8" else 1.0)

    by_key = {e["key"]: e for e in lmap["entries"]}
    for e in lmap["entries"]:  # right decision per deployment; inference only from the same deployment
        assert e["ok"] is (truth(e["student"], e["deployment"]) <= budget), e["key"]
        if e["inferred_from"] is None:
            assert e["latency_ms"]["p95"] == pytest.approx(truth(e["student"], e["deployment"]))
        else:
            assert by_key[e["inferred_from"]]["deployment"] == e["deployment"]
    # every int8 measurement got calibration images, no fp32 one did
    calls = [e for e in read_log(targets) if e["event"] == "target"]
    assert {c["precision"] for c in calls} == {"fp32", "int8"}
    assert all((c["calibration"] == "calibration") is (c["precision"] == "int8") for c in calls)
    # offered: architectures under budget for at least one deployment (5: every r64 one, d0.25 w0.5 r128)
    offered = {k.rsplit(" ", 2)[0] for k, e in by_key.items() if e["ok"]}
    assert len(offered) == 5
    trials = _study(run).get_trials()
    assert all(set(t.distributions[ARCHITECTURE].choices) == offered for t in trials)
    records = [TrialRecord.from_trial(t) for t in trials]
    counted_records = [r for r in records if r.counted]
    assert len(counted_records) == summary["trained"] == 8
    for r in counted_records:  # only pairs under budget trained
        assert by_key[r.candidate]["ok"], r.candidate
    refused = [r for r in records if r.outcome == REFUSED]
    assert refused, "seed 0 samples the fp32 deployment of an architecture only int8 brings under budget"
    assert summary["refused"] == len(refused)
    for r in refused:  # fp32 pairs of int8-only architectures: not built, not trained, not counted
        assert r.deployment["precision"] == "fp32" and not by_key[r.candidate]["ok"] and r.train_seconds == 0.0
        assert by_key[r.candidate.replace("fp32", "int8")]["ok"]
    for t in trials:
        if TrialRecord.from_trial(t).outcome == REFUSED:
            assert max(t.constraints.values()) > 0
    # an architecture over budget at fp32 trained, with the int8 deployment only
    int8_only = [r for r in counted_records if not by_key[r.candidate.replace("int8", "fp32")]["ok"]]
    assert int8_only and all(r.deployment["precision"] == "int8" for r in int8_only)
    assert len(_trained_shapes(fake_log)) == 8

    # resume: the map comes from the study; only the winner is measured again (confirm + final)
    measured_before = len(calls)
    again = run_search(_config(run, space, trials=10, latency_ms=budget), stages=_int8_stages(targets),
                       show_progress=False)
    assert again["latency_map"]["measured_here"] == 0 and again["latency_map"]["size"] == 16
    assert len([e for e in read_log(targets) if e["event"] == "target"]) - measured_before == 2
