"""A fresh machine without the Debian packages: the tests that need them skip with the reason and the install hint.

The Debian packages are never removed here (other work on the machine needs them); their absence is emulated in a
child pytest run: Fashion-MNIST through EDGESKD_FASHION_MNIST_DIR pointing at an empty folder, cmake/cc/c++/
pkg-config/valgrind through a PATH that holds none of them, PostgreSQL by leaving EDGESKD_TEST_POSTGRES_URL unset.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# test -> words its skip reason must contain (the install hint)
NEEDS = {
    "tests/selection/test_lite0_probe.py": "apt-get install dataset-fashion-mnist",
    "tests/data/test_data_builtin.py::test_fashion_mnist_is_70000_real_images_with_a_stratified_val":
        "apt-get install dataset-fashion-mnist",
    "tests/deploy/test_c_runtime.py::test_install_and_pkg_config": "apt-get install cmake",
    "tests/deploy/test_c_runtime.py::test_ctest_error_paths_and_sanitizer": "apt-get install cmake",
    "tests/search/test_search_machinery.py::test_two_workers_on_postgresql": ".ci/postgres.sh",
}


def test_absent_debian_packages_make_tests_skip_with_the_install_hint(tmp_path):
    empty_data, empty_bin = tmp_path / "no-fashion-mnist", tmp_path / "bin"
    empty_data.mkdir()
    empty_bin.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "EDGESKD_TEST_POSTGRES_URL"}
    env |= {"EDGESKD_FASHION_MNIST_DIR": str(empty_data), "PATH": str(empty_bin)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *NEEDS,
                           # a test that uses Fashion-MNIST when present and random images when not
                           "tests/data/test_data_tensors_cli.py::test_to_tensors_on_a_stacked_real_set_and_multilabel"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"\b1 passed\b", out) and " failed" not in out and " error" not in out, out[-3000:]
    skips = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    for test, hint in NEEDS.items():
        path = test.split("::")[0]
        assert any(path in line and hint in line for line in skips), f"{test}: no skip naming {hint!r} in {skips}"
