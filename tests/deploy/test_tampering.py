"""Tampered bundles: the C runtime (ctypes and the classify example) and `edgeskd verify` (with and without parity)
refuse the same ones, each with a one-line message naming the file. Issue 11, requirement 1.

Each case starts from a fresh copy of a real exported bundle and changes one thing:
labels swapped in manifest.json; the output rows of model.onnx swapped; model.onnx a symlink to a file outside the
bundle; manifest.json over 16 MB; a model file with a different size; no manifest.sha256; a wrong pinned digest.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgeskd.errors import ExportError
from edgeskd.export import verify_bundle
from edgeskd.export.integrity import DIGEST_NAME, manifest_sha256, write_manifest_digest


@pytest.fixture
def bundle(rgb_bundle, tmp_path):
    """A private copy of the session's exported bundle (2 labels: NORMAL, PNEUMONIA)."""
    source, _ = rgb_bundle
    return shutil.copytree(source, tmp_path / "bundle")


@pytest.fixture
def image(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "x.pgm"
    path.write_bytes(b"P5\n40 30\n255\n" + rng.integers(0, 256, 40 * 30, dtype=np.uint8).tobytes())
    return path


def _c_open_error(bundle, **kw) -> tuple[str, str]:
    """(status name, message) of a refused edgeskd_open; fails the test when the bundle opens."""
    from cruntime import CModel, CRuntimeError

    try:
        CModel(bundle, threads=1, **kw).close()
    except CRuntimeError as exc:
        return exc.status, str(exc)
    pytest.fail(f"the C runtime opened the tampered bundle {bundle}")


def _classify(c_build, bundle, image, *extra, backend="onnxruntime"):
    return subprocess.run([str(c_build / "classify"), str(bundle), str(image), "--all", "--threads", "1",
                           "--backend", backend, *extra], capture_output=True, text=True, timeout=120)


def _verify_fails(bundle, match, **kw) -> None:
    for parity in (True, False):
        with pytest.raises(ExportError, match=match):
            verify_bundle(bundle, parity=parity, **kw)


def _edit_manifest(bundle, edit, *, rewrite_digest: bool = False) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest, indent=2))
    if rewrite_digest:
        write_manifest_digest(bundle)


def test_untampered_bundle_passes_everywhere(c_build, bundle, image):
    """The baseline every case below departs from: opens in C (both backends, pinned digest too) and verifies."""
    from cruntime import CModel

    for backend in ("onnxruntime", "openvino"):
        with CModel(bundle, backend=backend, threads=1, manifest_sha256=manifest_sha256(bundle)) as model:
            assert model.labels == ["NORMAL", "PNEUMONIA"]
        assert _classify(c_build, bundle, image, backend=backend).returncode == 0
    assert verify_bundle(bundle, parity=True, manifest_sha256=manifest_sha256(bundle)).files_checked > 0


def test_labels_swapped_in_manifest(c_build, bundle, image):
    _edit_manifest(bundle, lambda m: m["labels"].reverse())
    status, message = _c_open_error(bundle)
    assert status == "EDGESKD_ERR_INTEGRITY" and "manifest.json" in message and "manifest.sha256 says" in message
    run = _classify(c_build, bundle, image)
    assert run.returncode == 1 and run.stdout == "" and "manifest.sha256 says" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    _verify_fails(bundle, "manifest.json: sha256 .* manifest.sha256 says")
    # the command line: `verify --no-parity` catches it too, one line, exit 2
    cli = subprocess.run([sys.executable, "-m", "edgeskd", "verify", str(bundle), "--no-parity"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2 and "manifest.sha256 says" in cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1, cli.stderr


def test_labels_swapped_with_digest_rewritten(c_build, bundle, image):
    """Whoever can rewrite manifest.sha256 too defeats the digest file; a pinned digest still refuses the bundle
    (C and verify), and verify's parity step sees the labels disagree with the checkpoint."""
    pinned = manifest_sha256(bundle)
    _edit_manifest(bundle, lambda m: m["labels"].reverse(), rewrite_digest=True)
    status, message = _c_open_error(bundle, manifest_sha256=pinned)
    assert status == "EDGESKD_ERR_INTEGRITY" and "pinned" in message
    run = _classify(c_build, bundle, image, "--manifest-sha256", pinned)
    assert run.returncode == 1 and "pinned" in run.stderr
    _verify_fails(bundle, "pinned", manifest_sha256=pinned)
    with pytest.raises(ExportError, match="labels"):
        verify_bundle(bundle, parity=True)


def _swap_output_rows(path) -> None:
    """Swap the two class rows of the classifier (weight and bias) in model.onnx: a model that answers the other
    label with the same confidence."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    swapped = 0
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.shape == (2,) or (array.ndim == 2 and array.shape[0] == 2):  # Gemm bias (K,), weight (K, F)
            init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array[::-1]), init.name))
            swapped += 1
    assert swapped == 2, f"expected the classifier's weight and bias, swapped {swapped} tensors"
    onnx.save(model, str(path))


def test_output_rows_of_model_swapped(c_build, bundle, image):
    import onnxruntime as ort

    before = ort.InferenceSession(str(bundle / "model.onnx")).run(None, {"input": np.ones((1, 3, 64, 64), np.float32)})
    _swap_output_rows(bundle / "model.onnx")
    after = ort.InferenceSession(str(bundle / "model.onnx")).run(None, {"input": np.ones((1, 3, 64, 64), np.float32)})
    np.testing.assert_allclose(after[0][0], before[0][0][::-1], rtol=1e-5)  # the tampering is real
    status, message = _c_open_error(bundle)
    assert status == "EDGESKD_ERR_INTEGRITY" and "model.onnx" in message and "sha256" in message
    run = _classify(c_build, bundle, image)
    assert run.returncode == 1 and run.stdout == "" and "model.onnx" in run.stderr
    _verify_fails(bundle, r"model.onnx: (sha256|\d+ bytes)")


def test_model_file_symlinked_outside_the_bundle(c_build, bundle, image, tmp_path):
    outside = tmp_path / "outside.onnx"
    shutil.copyfile(bundle / "model.onnx", outside)  # the same bytes: only the link itself is wrong
    (bundle / "model.onnx").unlink()
    (bundle / "model.onnx").symlink_to(outside)
    status, message = _c_open_error(bundle)
    assert status == "EDGESKD_ERR_INTEGRITY" and "model.onnx is a symbolic link" in message
    run = _classify(c_build, bundle, image)
    assert run.returncode == 1 and "symbolic link" in run.stderr
    _verify_fails(bundle, "model.onnx: is a symbolic link")


def test_openvino_weights_changed(c_build, bundle, image):
    with open(bundle / "model.bin", "r+b") as fh:
        fh.seek(-8, 2)
        last = fh.read(4)
        fh.seek(-8, 2)
        fh.write(bytes(b ^ 0xFF for b in last))
    status, message = _c_open_error(bundle, backend="openvino")
    assert status == "EDGESKD_ERR_INTEGRITY" and "model.bin" in message
    run = _classify(c_build, bundle, image, backend="openvino")
    assert run.returncode == 1 and "model.bin" in run.stderr
    _verify_fails(bundle, "model.bin: sha256")


def test_model_file_size_differs(c_build, bundle, image):
    with open(bundle / "model.onnx", "ab") as fh:
        fh.write(b"\0" * 16)
    status, message = _c_open_error(bundle)
    assert status == "EDGESKD_ERR_INTEGRITY" and "model.onnx" in message and "bytes" in message
    assert _classify(c_build, bundle, image).returncode == 1
    _verify_fails(bundle, r"model.onnx: \d+ bytes, manifest says")


def test_manifest_over_16_mb(c_build, bundle, image):
    """Padded with whitespace (still valid JSON, digest rewritten): only the size is wrong."""
    with open(bundle / "manifest.json", "ab") as fh:
        fh.write(b" " * (16 * 1024 * 1024))
    write_manifest_digest(bundle)
    status, message = _c_open_error(bundle)
    assert status == "EDGESKD_ERR_MANIFEST" and "16 MB" in message
    run = _classify(c_build, bundle, image)
    assert run.returncode == 1 and "16 MB" in run.stderr
    _verify_fails(bundle, "16 MB")


def test_bundle_without_manifest_digest(c_build, bundle, image):
    """Bundles exported before manifest.sha256 existed: refused, and the message says how to re-export."""
    (bundle / DIGEST_NAME).unlink()
    status, message = _c_open_error(bundle)
    assert status == "EDGESKD_ERR_INTEGRITY" and "manifest.sha256 is missing" in message and "re-export" in message
    run = _classify(c_build, bundle, image)
    assert run.returncode == 1 and "re-export" in run.stderr
    _verify_fails(bundle, "manifest.sha256 is missing.*re-export")


def test_wrong_pinned_digest(c_build, bundle, image):
    wrong = "0" * 64
    status, message = _c_open_error(bundle, manifest_sha256=wrong)
    assert status == "EDGESKD_ERR_INTEGRITY" and "pinned" in message
    run = _classify(c_build, bundle, image, "--manifest-sha256", wrong)
    assert run.returncode == 1 and "pinned" in run.stderr
    _verify_fails(bundle, "pinned", manifest_sha256=wrong)
    with pytest.raises(ExportError, match="64 hex digits"):
        verify_bundle(bundle, parity=False, manifest_sha256="abc")


def test_bounds_are_refused_with_the_limit(c_build, bundle, image, tmp_path):
    """C side of requirement 2: threads above the online cores unless forced, images over 64 Mi pixels."""
    import os

    cores = os.sysconf("SC_NPROCESSORS_ONLN")  # what the C runtime compares with
    run = subprocess.run([str(c_build / "classify"), str(bundle), str(image), "--threads", str(cores + 1)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "online cores" in run.stderr, run.stderr
    run = subprocess.run([str(c_build / "classify"), str(bundle), str(image), "--threads", str(cores + 1),
                          "--force-threads"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    run = subprocess.run([str(c_build / "classify"), str(bundle), str(image), "--threads", "100000"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "1024" in run.stderr
    big = tmp_path / "big.pgm"
    big.write_bytes(b"P5\n8193 8193\n255\n")  # the header alone: refused before any pixel is read or allocated
    run = subprocess.run([str(c_build / "classify"), str(bundle), str(big)], capture_output=True, text=True)
    assert run.returncode == 2 and "67108864" in run.stderr
    from cruntime import CModel, CRuntimeError

    with CModel(bundle, threads=1) as model:
        with pytest.raises(CRuntimeError, match="EDGESKD_ERR_INVALID_ARGUMENT.*limit is 67108864"):
            model.classify_pixels(np.zeros((8193, 8193), np.uint8))
