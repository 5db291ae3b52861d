"""The search machinery (storage, gate, resume, workers, report) with fast fake stages (tests/search/search_fakes.py).

Fake latency = 40 ms * depth * width * (resolution / 64)^2, so with a 10 ms budget part of fake_space.yaml is over
budget. The real stages run in test_search_end_to_end.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from edgeskd.errors import SearchError
from edgeskd.search import SearchConfig, run_search
from edgeskd.search.config import space_digest
from edgeskd.search.records import counted as is_counted
from edgeskd.search.storage import mask_url, resolve_storage

HERE = Path(__file__).parent
SPACE = str((HERE / "fake_space.yaml").resolve())
sys.path.insert(0, str(HERE))
from search_fakes import fake_latency, fake_stages, read_log  # noqa: E402


def _config(run_dir: Path, **kw) -> SearchConfig:
    values = dict(data="fake", teacher="tf_efficientnet_lite0", latency_ms=10.0, trials=8, space=SPACE,
                  space_sha256=space_digest(SPACE), study="t", run_dir=str(run_dir),
                  stages="search_fakes:fake_stages", workers=1)
    values.update(kw)
    return SearchConfig(**values)


def _env(log: Path, step_s: float = 0.02) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "EDGESKD_FAKE_LOG": str(log), "EDGESKD_FAKE_STEP_S": str(step_s)}


def _journal_trials(run_dir: Path, study: str = "t"):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(run_dir / "study.journal")))
    return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)


@pytest.fixture
def fake_log(tmp_path, monkeypatch):
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("EDGESKD_FAKE_LOG", str(log))
    return log


def test_over_budget_candidates_are_never_trained(tmp_path, fake_log):
    run = tmp_path / "run"
    summary = run_search(_config(run, trials=10), stages=fake_stages(), show_progress=False)
    trials = _journal_trials(run)
    lmap = json.loads((run / "latency_map.json").read_text())
    over = [e for e in lmap["entries"] if not e["ok"]]
    assert over, "the fake space must contain over-budget candidates"
    for e in over:
        s = e["student"]
        assert fake_latency(s["depth"], s["width"], s["resolution"]) > 10 and "> budget" in e["reason"]
    # every trial trained a feasible candidate: the sampler was only offered the under-budget ones
    finished = [t for t in trials if t.state.is_finished()]
    assert len(finished) == 10 or summary["reused"] == len(finished) - 10
    trained_shapes = {(e["depth"], e["width"], e["resolution"]) for e in read_log(fake_log) if e["event"] == "train"}
    assert all(fake_latency(*shape) <= 10 for shape in trained_shapes)
    # the winner met the budget, was re-trained with the final schedule and exported
    winner = summary["winner"]
    assert winner["budget_ok"] and winner["latency_ms"]["p95"] <= 10
    assert winner["train_config"]["epochs_skd"] == 4 and (run / "bundle" / "manifest.json").is_file()
    assert summary["trained"] == 10 and summary["time"]["infeasible_train_seconds"] == 0
    for name in ("report.md", "report.html", "pareto.png", "latency_map.png", "confusion.png", "summary.json",
                 "config.json", "latency_map.json"):
        assert (run / name).stat().st_size > 0, name
    report = (run / "report.md").read_text()
    assert "Latency map" in report and f"Winner: trial {winner['trial']}" in report


def test_winner_that_misses_the_budget_on_remeasure_is_skipped_before_final_training(tmp_path, fake_log):
    import dataclasses

    first = run_search(_config(tmp_path / "probe", trials=6, study="probe"), stages=fake_stages(),
                       show_progress=False)["winner"]["student"]
    stages = fake_stages()
    seen: list[tuple] = []

    def noisy_measure(model, resolution, target, cache, **options):
        m = stages.measure(model, resolution, target, cache)
        shape = (model.depth, model.width, resolution)
        seen.append(shape)
        if shape == (first["depth"], first["width"], first["resolution"]) and seen.count(shape) > 1:
            m.stats = {**m.stats, "p95": 1000.0}  # the best candidate's re-measurement comes out over budget
        return m

    summary = run_search(_config(tmp_path / "run", trials=6, study="probe"),
                         stages=dataclasses.replace(stages, measure=noisy_measure), show_progress=False)
    winner, skipped = summary["winner"], summary["rejected_on_remeasure"]
    assert skipped and all("1000" in r["reason"] for r in skipped)
    assert (winner["student"]["depth"], winner["student"]["width"], winner["student"]["resolution"]) != \
        (first["depth"], first["width"], first["resolution"])
    assert winner["budget_ok"] and f"trial {skipped[0]['trial']} ranked higher" in (tmp_path / "run" / "report.md").read_text()


def test_impossible_budget_names_the_fastest_and_trains_nothing(tmp_path, fake_log):
    with pytest.raises(SearchError) as err:
        run_search(_config(tmp_path / "run", latency_ms=0.1, trials=5), stages=fake_stages(), show_progress=False)
    fastest = min(e["ms"] for e in read_log(fake_log) if e["event"] == "measure")
    assert f"{fastest:.2f} ms" in str(err.value) and "nothing was trained" in str(err.value)
    assert not [e for e in read_log(fake_log) if e["event"] == "train"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["ok"] is False


def test_pareto_mode_is_multi_objective_without_pruning(tmp_path, fake_log):
    summary = run_search(_config(tmp_path / "run", trials=6, pareto=True, study="p"), stages=fake_stages(),
                         show_progress=False)
    trials = _journal_trials(tmp_path / "run", "p")
    assert all(t.user_attrs.get("outcome") != "pruned-metric" for t in trials)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert done and all(len(t.values) == 2 and t.values[1] == t.user_attrs["latency_ms"]["p95"] for t in done)
    assert summary["winner"]["budget_ok"]


def test_resume_with_different_settings_is_refused(tmp_path, fake_log):
    run_search(_config(tmp_path / "run", trials=2), stages=fake_stages(), show_progress=False)
    with pytest.raises(SearchError, match="latency_ms"):
        run_search(_config(tmp_path / "run", trials=2, latency_ms=5.0), stages=fake_stages(), show_progress=False)


def _cli(run: Path, trials: int) -> list[str]:
    return [sys.executable, "-m", "edgeskd", "search", "--data", "fake", "--space", SPACE, "--latency-ms", "10",
            "--trials", str(trials), "--run-dir", str(run), "--study", "t", "--stages", "search_fakes:fake_stages"]


def _wait_finished(run: Path, n: int, proc: subprocess.Popen, log: Path, limit_s: float = 300) -> None:
    """Wait until >= n trials finished and a later trial is inside training (its fake training logged its start and
    the trial is still running). Generous limit: worker start-up on a loaded 2-core machine takes a while."""
    end = time.time() + limit_s
    while time.time() < end:
        assert proc.poll() is None, "search ended before it could be interrupted"
        if (run / "study.journal").exists():
            try:
                trials = _journal_trials(run)
            except KeyError:  # study not created yet
                trials = []
            done = (TrialState.COMPLETE, TrialState.PRUNED)
            try:
                started = [Path(e["out_dir"]).name for e in read_log(log) if e["event"] == "train"]
            except ValueError:  # a line being appended right now
                started = []
            running = {str(t.number) for t in trials if t.state == TrialState.RUNNING}
            if sum(t.state in done for t in trials) >= n and started and started[-1] in running:
                return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} trials finished, or none was being trained, within {limit_s} s")


def test_interrupted_search_resumes_without_losing_or_repeating(tmp_path):
    run, log = tmp_path / "run", tmp_path / "calls.jsonl"
    env = _env(log, step_s=0.5)  # ~1.5 s of "training" per trial
    # 1) Ctrl-C, 2) kill -9, each after more trials have finished and while a trial is being trained (waited for,
    # not guessed with a sleep, so a loaded machine cannot move the kill between trials); 3) the same command runs
    # to the end.
    finished_before: dict[int, tuple] = {}
    for sig, after in ((signal.SIGINT, 1), (signal.SIGKILL, 3)):
        # SIGINT back to its default in the child: a test run started in the background (nohup, `make test &`, some
        # CI runners) inherits SIGINT ignored, and Python then never turns Ctrl-C into KeyboardInterrupt
        proc = subprocess.Popen(_cli(run, 6), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        _wait_finished(run, after, proc, log=log)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == (130 if sig == signal.SIGINT else -9), err.decode()[-2000:]
    for t in _journal_trials(run):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            finished_before[t.number] = (t.state, t.values, t.params)
    assert len(finished_before) >= 3
    final = subprocess.run(_cli(run, 6), env=env, capture_output=True, timeout=600)
    assert final.returncode == 0, final.stderr.decode()[-3000:]
    assert "resuming study" in final.stderr.decode()

    trials = _journal_trials(run)
    for number, before in finished_before.items():  # nothing finished was lost or changed
        t = trials[number]
        assert (t.state, t.values, t.params) == before
    counted = [t for t in trials if is_counted(t)]
    assert len(counted) == 6
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert interrupted, "the kills should have interrupted at least one trial"
    # every interrupted candidate ran again to the end, with the same parameters (a re-run that was itself cut off
    # keeps pointing at the original trial number)
    reruns = {t.user_attrs["retry_of"]: t for t in counted if "retry_of" in t.user_attrs}
    for t in interrupted:
        root = t.user_attrs.get("retry_of", t.number)
        assert root in reruns and reruns[root].params == t.params
    # no finished trial was trained twice: each trial folder was trained into at most once
    trained = [Path(e["out_dir"]).name for e in read_log(log) if e["event"] == "train" and "trials" in e["out_dir"]]
    done_numbers = {str(t.number) for t in counted}
    assert all(trained.count(n) <= 1 for n in done_numbers)


def _check_workers(run: Path, trials, log: Path, wanted: int) -> None:
    counted = [t for t in trials if is_counted(t)]
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials)))                      # none duplicated, none lost
    assert wanted <= len(counted) <= wanted + 1                              # a worker may finish one in flight
    assert not [t for t in trials if t.state == TrialState.FAIL]
    events = [e for e in read_log(log) if e["event"] == "train" and "/trials/" in e["out_dir"]]
    dirs = [e["out_dir"] for e in events]
    assert len(dirs) == len(set(dirs))                                       # no trial trained twice
    assert len({e["pid"] for e in events}) == 2                             # both workers trained trials


def test_two_local_workers_share_a_journal(tmp_path, monkeypatch):
    log = tmp_path / "calls.jsonl"
    for k, v in _env(log, 0.05).items():
        monkeypatch.setenv(k, v)
    # the first worker to train waits for the second, so "both workers trained" does not depend on start-up speed
    monkeypatch.setenv("EDGESKD_FAKE_WAIT_FOR_TRAINERS", "2")
    run = tmp_path / "run"
    run_search(_config(run, trials=6, workers=2), show_progress=False)
    _check_workers(run, _journal_trials(run), log, 6)


def test_two_workers_on_postgresql(tmp_path, monkeypatch, postgres_url, capfd):
    log = tmp_path / "calls.jsonl"
    for k, v in _env(log, 0.05).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("EDGESKD_FAKE_WAIT_FOR_TRAINERS", "2")
    study = f"pg-{uuid.uuid4().hex[:8]}"
    run = tmp_path / "run"
    summary = run_search(_config(run, trials=6, workers=2, study=study), storage_url=postgres_url,
                         show_progress=True)
    trials = optuna.load_study(study_name=study, storage=postgres_url.replace("postgresql://",
                                                                              "postgresql+psycopg2://")).get_trials()
    _check_workers(run, trials, log, 6)
    # the password never reaches the screen, the summary, the config or the worker logs
    password = postgres_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    secret = f":{password}@"
    out, err = capfd.readouterr()
    texts = [out, err, json.dumps(summary), (run / "config.json").read_text(), (run / "report.md").read_text()]
    texts += [p.read_text() for p in (run / "workers").glob("*.log")]
    assert not [t for t in texts if secret in t]
    assert "***" in summary["storage"]


def test_storage_rules():
    assert mask_url("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("failed for postgresql://u:p@h/db, retry") == "failed for postgresql://u:***@h/db, retry"
    with pytest.raises(SearchError, match="not safe for 2 parallel workers"):
        resolve_storage("sqlite:///x.db", Path("."), 2)
    with pytest.raises(SearchError, match=r"\*\*\*"):
        resolve_storage("mysql://u:pw@h/db", Path("."), 1)
    assert resolve_storage(None, Path("/r"), 4).kind == "journal"
