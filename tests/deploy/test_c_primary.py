"""The C runtime runs a bundle's primary int8 model (issue 12): an NNCF int8 OpenVINO IR and an ONNX Runtime QDQ
model, calibrated on training-like images, give the same probabilities in C as the same artifact run from Python
(edgeskd.runtimes) on the real chest X-rays.

Tolerance per precision: the C and the Python side run the SAME int8 artifact with the same runtime build, so the
only difference is float32 preprocessing order: |C - Python| < 1e-4 on probabilities, as for fp32. (Against PyTorch
fp32 an int8 model is judged by the bundle's gate instead: top-1 agreement and accuracy drop.)
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeskd.data.preprocess import PreprocessSpec, preprocess

INT8_TOL = 1e-4


@pytest.fixture(scope="module")
def int8_bundles(tmp_path_factory, xrays):
    """(bundle, runtime) for openvino:int8 and ort:int8, each from the same random-init 64 px student."""
    from make_bundle import build_model

    from edgeskd.export import export_bundle
    from edgeskd.models import Checkpoint

    model, spec = build_model(64, 2, 3, 0)
    pre = PreprocessSpec.for_model(model, size=64, channels=3)
    # Calibration: synthetic "training" X-ray-like images (never the parity images below).
    rng = np.random.default_rng(1)
    calib = np.stack([preprocess(rng.integers(0, 256, size=(96, 96), dtype=np.uint8), pre).numpy()
                      for _ in range(16)]).astype(np.float32)
    out = []
    for primary in ("openvino:int8", "ort:int8"):
        folder = tmp_path_factory.mktemp(primary.replace(":", "_")) / "bundle"
        export_bundle(Checkpoint(model, spec, pre, ["NORMAL", "PNEUMONIA"], {"note": "int8 primary test"}), folder,
                      formats=("onnx", "openvino"), parity_images=[img for _, img in xrays], primary=primary,
                      calibration=calib)
        out.append((folder, primary.split(":")[0]))
    return out


@pytest.mark.parametrize("index", [0, 1], ids=["openvino-int8", "ort-int8"])
def test_c_runs_the_primary_int8_model_like_python(c_build, int8_bundles, xrays, index):
    from cruntime import CModel

    from edgeskd.runtimes import get_adapter, predict

    bundle, runtime = int8_bundles[index]
    manifest = json.loads((bundle / "manifest.json").read_text())
    primary = manifest["primary"]
    assert primary["precision"] == "int8" and primary["calibration"]["images"] == 16
    spec = PreprocessSpec.from_dict(manifest["preprocess"])
    adapter = get_adapter(primary["runtime"])
    runner = adapter.open(bundle / primary["files"]["primary"], precision="int8", threads=1, batch=1)
    backend = "openvino" if runtime == "openvino" else "onnxruntime"
    ours, ref = [], []
    with CModel(bundle, backend=backend, threads=1) as model:
        for _, image in xrays:
            ours.append(model.classify_pixels(image))
            logits = predict(runner, preprocess(image, spec).numpy()[None])[0].astype(np.float64)
            ref.append(np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum())
    diff = float(np.abs(np.array(ours) - np.array(ref)).max())
    assert diff < INT8_TOL, f"{backend} int8: C probabilities differ from the Python artifact by {diff:.2e}"
    # and the C side really ran the int8 model, not model.xml / model.onnx (fp32): those give other numbers
    fp32 = get_adapter(primary["runtime"]).open(
        bundle / ("model.xml" if runtime == "openvino" else "model.onnx"), precision="fp32", threads=1, batch=1)
    fp32_probs = []
    for _, image in xrays:
        logits = predict(fp32, preprocess(image, spec).numpy()[None])[0].astype(np.float64)
        fp32_probs.append(np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum())
    assert float(np.abs(np.array(ours) - np.array(fp32_probs)).max()) > INT8_TOL
    print(f"{backend} int8: max |C - Python artifact| = {diff:.2e}")
