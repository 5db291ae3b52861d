"""The C runtime (deploy/) against the Python pipeline, on real chest X-rays and brain MRIs, for both backends; the
C-only error-path suite (ctest, including its AddressSanitizer build); the classify example; a C++ consumer."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
import torch

from edgeskd.data.preprocess import PreprocessSpec, preprocess

BACKENDS = ("onnxruntime", "openvino")
PREPROCESS_TOL = 1e-5
PROB_TOL = 1e-4


def _spec(bundle) -> PreprocessSpec:
    return PreprocessSpec.from_dict(json.loads((bundle / "manifest.json").read_text())["preprocess"])


def _python_probs(model, image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The Python pipeline: edgeskd preprocessing, the PyTorch student, softmax."""
    with torch.no_grad():
        logits = model(preprocess(image, spec).unsqueeze(0)).double()
    return torch.softmax(logits, dim=1)[0].numpy()


def _synthetic() -> list[tuple[str, np.ndarray]]:
    """Shapes the real images do not cover: enlarging, one side enlarged and one shrunk, RGBA, tiny, exact size."""
    rng = np.random.default_rng(0)
    return [("gray 23x31 (enlarge)", rng.integers(0, 256, (31, 23), dtype=np.uint8)),
            ("rgb 40x130 (mixed)", rng.integers(0, 256, (130, 40, 3), dtype=np.uint8)),
            ("rgba 77x77", rng.integers(0, 256, (77, 77, 4), dtype=np.uint8)),
            ("gray 1x1", np.array([[200]], dtype=np.uint8)),
            ("rgb 64x64 (no resize)", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))]


@pytest.mark.parametrize("which", ["rgb_bundle", "gray_bundle"])
def test_preprocessing_matches_python(request, c_build, which, xrays, mris):
    """Gray X-rays and RGB MRIs into a 3-channel and a 1-channel (luma) model: C equals edgeskd.data.preprocess."""
    from cruntime import CModel

    bundle, _ = request.getfixturevalue(which)
    spec = _spec(bundle)
    worst = 0.0
    with CModel(bundle) as model:
        for name, image in xrays + mris + _synthetic():
            ours = model.preprocess(image)
            ref = preprocess(image, spec).numpy()
            assert ours.shape == ref.shape == (spec.channels, spec.size, spec.size), name
            diff = float(np.abs(ours - ref).max())
            assert diff < PREPROCESS_TOL, f"{name}: C preprocessing differs from Python by {diff:.2e}"
            worst = max(worst, diff)
    print(f"{which}: worst preprocessing difference {worst:.2e}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("which,images", [("rgb_bundle", "xrays"), ("gray_bundle", "mris")])
def test_probabilities_match_python(request, c_build, backend, which, images):
    """8-bit pixels -> probabilities in C equals preprocessing + PyTorch + softmax in Python (max abs diff < 1e-4)."""
    from cruntime import CModel

    bundle, torch_model = request.getfixturevalue(which)
    spec = _spec(bundle)
    ours, ref = [], []
    with CModel(bundle, backend=backend, threads=1) as model:
        for _, image in request.getfixturevalue(images):
            ours.append(model.classify_pixels(image))
            ref.append(_python_probs(torch_model, image, spec))
            # classify() on Python's own preprocessed tensor agrees too (isolates the backend from preprocessing)
            np.testing.assert_allclose(model.classify(preprocess(image, spec).numpy()), ref[-1], atol=PROB_TOL)
    ours, ref = np.array(ours), np.array(ref)
    assert ours.shape == ref.shape == (4, len(model.labels))
    np.testing.assert_allclose(ours.sum(axis=1), 1.0, atol=1e-5)
    diff = float(np.abs(ours - ref).max())
    assert diff < PROB_TOL, f"{backend}: C probabilities differ from Python by {diff:.2e}"
    # the comparison means something only if the images lead to different outputs
    assert float(np.ptp(ref, axis=0).max()) > 10 * PROB_TOL, f"outputs barely vary across images: {ref}"
    print(f"{backend} {which}: max |C - Python| = {diff:.2e}")


def test_ctest_error_paths_and_sanitizer(c_build, rgb_bundle):
    """ctest: error paths without and with a real bundle (both backends), the AddressSanitizer/LeakSanitizer/UBSan
    build of the same tests, and a C++ program that includes edgeskd.h."""
    bundle, _ = rgb_bundle
    run = subprocess.run(["ctest", "--test-dir", str(c_build), "--output-on-failure"], capture_output=True, text=True,
                         env={**os.environ, "EDGESKD_TEST_BUNDLE": str(bundle)}, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    names = ["c_error_paths", "c_error_paths_asan", "c_sha256", "c_threads", "cxx_include"]
    if (c_build / "test_threads_tsan").exists():  # built when the compiler supports -fsanitize=thread
        names.append("c_threads_tsan")
    for name in names:
        assert f"{name} " in run.stdout and "Passed" in run.stdout, run.stdout
    assert "Not Run" not in run.stdout and "Skipped" not in run.stdout, run.stdout
    assert "100% tests passed" in run.stdout


def _write_pnm(path, image: np.ndarray) -> None:
    magic = b"P5" if image.ndim == 2 else b"P6"
    path.write_bytes(magic + f"\n# real image\n{image.shape[1]} {image.shape[0]}\n255\n".encode() + image.tobytes())


@pytest.mark.parametrize("backend", BACKENDS)
def test_classify_example_on_real_images(c_build, rgb_bundle, xrays, mris, tmp_path, backend):
    """deploy/examples/classify.c on PGM (X-ray) and PPM (MRI) files prints Python's top label and probability."""
    bundle, torch_model = rgb_bundle
    spec = _spec(bundle)
    labels = json.loads((bundle / "manifest.json").read_text())["labels"]
    for name, image in (xrays[0], mris[0]):
        path = tmp_path / (name + (".pgm" if image.ndim == 2 else ".ppm"))
        _write_pnm(path, image)
        run = subprocess.run([str(c_build / "classify"), str(bundle), str(path), "--backend", backend, "--threads",
                              "1", "--all"], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        printed = dict(line.split() for line in run.stdout.splitlines())
        ref = _python_probs(torch_model, image, spec)
        assert list(printed) == labels
        np.testing.assert_allclose([float(printed[label]) for label in labels], ref, atol=PROB_TOL)


def test_classify_example_rejects_bad_input(c_build, rgb_bundle, tmp_path):
    bundle, _ = rgb_bundle
    bad = tmp_path / "bad.pgm"
    bad.write_bytes(b"P5\n4 4\n255\n" + bytes(5))  # 16 pixels announced, 5 present
    run = subprocess.run([str(c_build / "classify"), str(bundle), str(bad)], capture_output=True, text=True)
    assert run.returncode == 2 and "truncated" in run.stderr
    run = subprocess.run([str(c_build / "classify"), str(tmp_path / "nowhere"), str(bad)], capture_output=True,
                         text=True)
    assert run.returncode == 2  # the image is checked first
    good = tmp_path / "good.pgm"
    good.write_bytes(b"P5\n4 4\n255\n" + bytes(16))
    run = subprocess.run([str(c_build / "classify"), str(tmp_path / "nowhere"), str(good)], capture_output=True,
                         text=True)
    assert run.returncode == 1 and "nowhere/manifest.json" in run.stderr


def test_ctypes_errors_name_the_problem(c_build, rgb_bundle, tmp_path):
    from cruntime import CModel, CRuntimeError

    bundle, _ = rgb_bundle
    with pytest.raises(CRuntimeError, match="EDGESKD_ERR_IO.*manifest.json"):
        CModel(tmp_path / "missing")
    with pytest.raises(CRuntimeError, match="EDGESKD_ERR_UNSUPPORTED.*tensorrt"):
        CModel(bundle, backend="tensorrt")
    with CModel(bundle) as model:
        with pytest.raises(CRuntimeError, match="EDGESKD_ERR_SIZE_MISMATCH.*12288"):
            model.classify(np.zeros(100, np.float32))
        with pytest.raises(CRuntimeError, match="EDGESKD_ERR_INVALID_ARGUMENT.*channels is 2"):
            model.classify_pixels(np.zeros((8, 8, 2), np.uint8))
        assert model.input_shape == (1, 3, 64, 64) and model.labels == ["NORMAL", "PNEUMONIA"]


def test_install_and_pkg_config(c_build, rgb_bundle, tmp_path):
    """cmake --install lays out lib/include/bin + edgeskd.pc; a program built from pkg-config's flags runs a bundle."""
    import shutil

    if shutil.which("pkg-config") is None:
        pytest.skip("pkg-config is not installed (apt-get install pkg-config)")
    bundle, _ = rgb_bundle
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", str(c_build), "--prefix", str(prefix)], check=True, capture_output=True)
    app = tmp_path / "app.c"
    app.write_text('#include <edgeskd.h>\n#include <stdio.h>\n'
                   'int main(int argc, char **argv) {\n  (void)argc; char err[512]; edgeskd_model *m = NULL;\n'
                   '  if (edgeskd_open(argv[1], NULL, &m, err, sizeof err)) { puts(err); return 1; }\n'
                   '  const char *label; edgeskd_label(m, 1, &label); printf("%s\\n", label);\n'
                   '  edgeskd_close(m); return 0;\n}\n')
    pc = subprocess.run(["pkg-config", "--cflags", "--libs", "edgeskd"], capture_output=True, text=True, check=True,
                        env={**os.environ, "PKG_CONFIG_PATH": str(next(prefix.rglob("edgeskd.pc")).parent)})
    lib_dir = next(prefix.rglob("libedgeskd.so")).parent
    subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", str(app), "-o", str(tmp_path / "app"),
                    *pc.stdout.split(), f"-Wl,-rpath,{lib_dir}"], check=True, capture_output=True)
    run = subprocess.run([str(tmp_path / "app"), str(bundle)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "PNEUMONIA", run.stdout + run.stderr
