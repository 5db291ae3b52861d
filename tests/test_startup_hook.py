"""The start-up hook installed with edgeskd: a plain `import timm` works in the installed environment.

Each check runs a fresh interpreter of this venv (sys.executable), so it sees exactly what a user's `python -c` or
notebook sees: the .pth files in site-packages, nothing imported by pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "EDGESKD_NO_TORCHVISION_FIX"} | env
    # run outside the repository so the source tree on the current directory cannot stand in for the installed package
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(sysconfig.get_paths()["purelib"]), env=environment)


def _hook_installed() -> bool:
    return (Path(sysconfig.get_paths()["purelib"]) / "edgeskd-startup.pth").is_file()


needs_hook = pytest.mark.skipif(not _hook_installed(), reason="edgeskd-startup.pth is not installed in this venv; "
                                "install edgeskd with `make install` (pip install -e .) first")


@needs_hook
@pytest.mark.parametrize("code", [
    "import timm; timm.create_model('resnet18', pretrained=False, num_classes=2)",
    "import timm, edgeskd; edgeskd.load_teacher",
    "import edgeskd, timm; edgeskd.build_student; timm.create_model('resnet18', pretrained=False)",
])
def test_plain_import_timm_works_in_the_installed_venv(code):
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr.strip().splitlines()[-1:]


@needs_hook
def test_hook_changes_nothing_where_torchvision_loads_its_own_ops():
    # The fix defines only schemas that are missing; what torchvision's C++ library registered stays its own.
    code = ("import torch, torchvision, torchvision.extension as e, _edgeskd_startup as s\n"
            "print(e._has_ops(), sorted(s._SCHEMAS), s.define_missing_torchvision_schemas())")
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr.strip().splitlines()[-1:]
    has_ops, _, added_again = proc.stdout.strip().partition(" ")
    assert added_again.endswith("[]")  # idempotent: a second call adds nothing
    if has_ops == "True":  # torchvision's C++ ops loaded: the hook must not have defined anything
        assert _run("import _edgeskd_startup as s, torchvision; print(s._library)").stdout.strip() == "None"


@needs_hook
def test_hook_can_be_disabled_and_then_torchvision_behaves_as_it_would_without_edgeskd():
    proc = _run("import torchvision.extension as e; print(e._has_ops())", EDGESKD_NO_TORCHVISION_FIX="1")
    if proc.returncode == 0 and proc.stdout.strip() == "True":
        pytest.skip("torchvision's C++ ops load on this machine, so torchvision imports without the fix anyway")
    assert proc.returncode != 0 and "torchvision::nms" in proc.stderr
    assert _run("import timm", EDGESKD_NO_TORCHVISION_FIX="1").returncode != 0


def test_cli_help_does_not_import_torch():
    proc = _run("import sys, runpy\nsys.argv = ['edgeskd', '--help']\n"
                "try:\n    runpy.run_module('edgeskd', run_name='__main__')\nexcept SystemExit as e:\n"
                "    assert e.code in (0, None), e.code\n"
                "heavy = sorted(m for m in ('torch', 'torchvision', 'timm', 'onnxruntime', 'openvino') if m in sys.modules)\n"
                "print('heavy:', heavy, file=sys.stderr)\nassert not heavy, heavy")
    assert proc.returncode == 0, proc.stderr.strip().splitlines()[-1:]
