"""Shared helpers of the reliability suite: every bad input or fault must end in one line on stderr and exit 2."""

from __future__ import annotations

import pytest

from edgeskd.cli import main


@pytest.fixture()
def run_cli(capsys):
    """run_cli(argv...) -> (exit code, stdout, the one stderr line); asserts the one-line-error contract on failure."""

    def run(*argv: str, expect: int = 2) -> tuple[int, str, str]:
        rc = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        lines = [line for line in err.splitlines() if line.strip()]
        assert rc == expect, (rc, out, err)
        if expect == 2:
            assert len(lines) == 1 and lines[0].startswith(f"edgeskd {argv[0]}: error:"), err
            assert "Traceback" not in err
        return rc, out, lines[-1] if lines else ""

    return run


@pytest.fixture()
def blocked_dir(tmp_path):
    """A folder path no one can create, even root: its parent is a regular file (ENOTDIR). chmod does not stop root,
    which these tests run as, so it cannot stand in for a read-only folder."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker / "out"


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """A tiny real ONNX model (milliseconds to load and run)."""
    import torch.nn as nn

    from edgeskd.export.onnx import export_onnx

    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 4))
    return export_onnx(net, tmp_path_factory.mktemp("onnx") / "tiny.onnx", resolution=32)
