"""The foundation: CLI table, doctor, the torchvision shim, atomic writes."""

import json
import os
import subprocess
import sys

import pytest

from edgeskd._io import atomic_path, atomic_write_json, sha256_file
from edgeskd.cli import COMMANDS, main


def test_help_lists_every_product_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in ("select", "train", "bench", "agent", "search", "export", "verify", "doctor"):
        assert name in COMMANDS and f"    {name}" in out


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: edgeskd" in capsys.readouterr().out


def test_doctor_json_reports_runtimes_and_cpu(capsys):
    assert main(["doctor", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["runtimes"]["onnxruntime"]["providers"]
    assert "CPUExecutionProvider" in info["runtimes"]["onnxruntime"]["providers"]
    assert info["cpu"]["logical_cores"] >= 1
    assert info["packages"]["torch"]
    assert "tensorrt" in info["runtimes"]


def test_console_script_fails_with_one_line_reason():
    # a bad value must give exit code != 0 and a single stderr line naming it
    proc = subprocess.run([sys.executable, "-m", "edgeskd", "doctor", "--no-such-flag"], capture_output=True, text=True)
    assert proc.returncode != 0 and "--no-such-flag" in proc.stderr


def test_timm_imports_through_the_shim():
    from edgeskd._compat import ensure_torchvision, import_timm

    ensure_torchvision()
    ensure_torchvision()  # idempotent
    timm = import_timm()
    assert timm.create_model("resnet18", pretrained=False) is not None


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    assert len(sha256_file(target)) == 64
    assert target.stat().st_mode & 0o044 == 0o044 or os.umask(os.umask(0)) & 0o044  # readable like open() files


def test_packaging_lists_every_subpackage_and_ships_profiles():
    import importlib.resources
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(root).parts) for p in (root / "edgeskd").rglob("__init__.py")}
    assert on_disk | {"edgeskd.profiles"} == listed
    targets = importlib.resources.files("edgeskd.profiles").joinpath("targets")
    assert any(entry.name.endswith(".yaml") for entry in targets.iterdir())


def test_public_surface_resolves():
    import edgeskd

    for name in edgeskd.__all__:
        assert getattr(edgeskd, name) is not None, name
    with pytest.raises(AttributeError):
        edgeskd.no_such_name  # noqa: B018
