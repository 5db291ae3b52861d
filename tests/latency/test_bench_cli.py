"""`edgeskd bench` end to end, in-process through the CLI's main()."""

from __future__ import annotations

import json

from edgeskd.cli import main

FAST_ARGS = ["--runs", "5", "--seconds", "0", "--warmup", "0.02"]


def test_table_json_save_and_compare(tiny_onnx, tmp_path, capsys):
    saved = tmp_path / "base.json"
    assert main(["bench", str(tiny_onnx), *FAST_ARGS, "--save", str(saved), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    row = report["results"][0]
    assert (row["target"], row["mode"], row["status"]) == ("ort-cpu", "model", "ok")
    assert row["measurement"]["stats"]["n"] >= 5 and json.loads(saved.read_text())["results"][0]["status"] == "ok"

    assert main(["bench", str(tiny_onnx), *FAST_ARGS, "--compare", str(saved)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["target", "mode", "status"] and "ratio_p50" in out[0]
    cells = out[2].split()
    assert cells[0] == "ort-cpu" and float(cells[-2]) > 0  # a measured ratio, not a dash

    # A baseline from another fingerprint (here: 4 threads) is refused unless forced.
    data = json.loads(saved.read_text())
    data["results"][0]["measurement"]["fingerprint"]["threads"] = 4
    saved.write_text(json.dumps(data))
    assert main(["bench", str(tiny_onnx), *FAST_ARGS, "--compare", str(saved)]) == 2
    assert "different fingerprints" in capsys.readouterr().err
    assert main(["bench", str(tiny_onnx), *FAST_ARGS, "--compare", str(saved), "--force", "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("target,mode,status") and len(lines) == 2


def test_budget_gate_exit_codes(tiny_onnx, capsys):
    assert main(["bench", str(tiny_onnx), *FAST_ARGS, "--assert-latency-ms", "5000", "--stat", "p99"]) == 0
    capsys.readouterr()
    assert main(["bench", str(tiny_onnx), *FAST_ARGS, "--assert-latency-ms", "0.00001"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edgeskd bench: budget missed: p95") and "ort-cpu" in err[0]


def test_bundle_gives_model_and_end_to_end_rows_and_failed_targets_exit_1(tiny_bundle, capsys, unsupported_target):
    # unsupported_target: one the runtimes here report they cannot run (fp16 OpenVINO on most x86 CPUs)
    code = main(["bench", str(tiny_bundle), *FAST_ARGS, "-t", "ort-cpu", "-t", unsupported_target, "--json"])
    report = json.loads(capsys.readouterr().out)
    rows = {(r["target"], r["mode"]): r for r in report["results"]}
    assert rows[("ort-cpu", "model")]["status"] == "ok"
    assert rows[("ort-cpu", "end-to-end")]["measurement"]["mode"] == "end-to-end"
    assert rows[(unsupported_target, "model")]["status"] == "error"
    assert code == 1


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    assert main(["bench", str(tmp_path / "missing.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "manifest.json").write_text(json.dumps({"model": {"files": {"onnx": "../../etc/passwd"}}}))
    assert main(["bench", str(tmp_path)]) == 2
    assert "not a file inside the bundle" in capsys.readouterr().err
    (tmp_path / "manifest.json").write_text("{")
    assert main(["bench", str(tmp_path)]) == 2
    assert "cannot read manifest.json" in capsys.readouterr().err
    assert main(["bench", "--list-targets"]) == 0
    assert "openvino-cpu-bf16" in capsys.readouterr().out
