"""Export parity benchmark: for each model family, every export format's logit error against PyTorch, top-1
agreement and file size, on real chest X-rays (pneumonia-model-package) through the product's preprocessing.

    .venv/bin/python benchmarks/export_parity.py [--resolution 128] [--images 16] [--int8] [--no-teacher]

Rows: small random-init students of the four families the search produces (their logits are small, so they test
the absolute part of the tolerance), plus the real ImageNet EfficientNet-Lite0 teacher at 224 px (large, trained
logits: tests the relative part). Every number is measured in this run; export times are wall-clock on a shared
machine and only indicate scale. `bf16 (unpinned)` shows what OpenVINO's default precision on this CPU would cost
(the export pins f32; this row is why). This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import edgeskd.models  # noqa: E402,F401  (installs the torchvision shim timm needs here)
from edgeskd.data.preprocess import PreprocessSpec  # noqa: E402
from edgeskd.export import export_bundle, load_parity_images  # noqa: E402
from edgeskd.export.parity import compare  # noqa: E402
from edgeskd.models import Checkpoint, StudentSpec, build_student, load_teacher, load_weights_strict  # noqa: E402

STUDENTS = {
    "vit": StudentSpec("vit_small_patch16_224", depth=0.5, width=0.5, num_classes=2),
    "convnext": StudentSpec("convnext_tiny", depth=0.34, width=0.5, num_classes=2),
    "resnet": StudentSpec("resnet50", depth=0.5, width=0.5, num_classes=2),
    "efficientnet": StudentSpec("tf_efficientnet_lite0", depth=0.5, width=0.5, num_classes=2),
}


def student(family: str, resolution: int) -> Checkpoint:
    spec = StudentSpec(**{**STUDENTS[family].to_dict(), "resolution": resolution})
    torch.manual_seed(0)
    return Checkpoint(build_student(spec).eval(), spec, PreprocessSpec(size=resolution), ["NORMAL", "PNEUMONIA"],
                      {"note": "random-init student (benchmark)"})


def lite0_teacher() -> Checkpoint:
    """The real ImageNet Lite0 as a 1000-class checkpoint (same architecture as a full-size student)."""
    from timm.data import ImageNetInfo

    teacher = load_teacher("tf_efficientnet_lite0")
    spec = StudentSpec("tf_efficientnet_lite0", resolution=224, num_classes=1000)
    model = build_student(spec)
    load_weights_strict(model, teacher.state_dict(), "tf_efficientnet_lite0 (ImageNet)")
    names = ImageNetInfo()
    labels = [names.index_to_label_name(i) for i in range(1000)]
    return Checkpoint(model.eval(), spec, PreprocessSpec.for_model(teacher, size=224), labels,
                      {"note": "ImageNet EfficientNet-Lite0 teacher"})


def bf16_row(bundle: Path, reference: np.ndarray, batch: np.ndarray) -> tuple[float, float, str]:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(bundle / "model.xml")), "CPU", {"INFERENCE_NUM_THREADS": 1})
    used = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    logits = compiled(batch)[compiled.output(0)]
    result = compare("openvino", "model.xml", used, "fp32", reference, logits)
    return result.max_abs_diff, result.top1_agreement, used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--int8", action="store_true", help="also try INT8 (ORT static quantisation)")
    parser.add_argument("--no-teacher", action="store_true", help="skip the 224 px ImageNet Lite0 row")
    args = parser.parse_args()
    torch.set_num_threads(1)

    images = load_parity_images("chest-xray-samples", max_images=args.images)
    models = [(f"{f} student {args.resolution}px", lambda f=f: student(f, args.resolution)) for f in STUDENTS]
    if not args.no_teacher:
        models.append(("Lite0 ImageNet teacher 224px", lite0_teacher))
    print(f"parity images: {images.source}\n")
    print("| model | artifact | precision | max abs diff | allowed | top-1 agree | size KiB | export s |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="edgeskd-parity-bench-") as tmp:
        for label, make in models:
            ckpt = make()
            out = Path(tmp) / label.replace(" ", "_")
            start = time.perf_counter()
            report = export_bundle(ckpt, out, parity_images=images, int8=args.int8, max_accuracy_drop=0.01)
            seconds = time.perf_counter() - start
            for r in report.parity:
                size = sum((out / f).stat().st_size for f in _files(report.manifest, r.file)) / 1024
                print(f"| {label} | {r.artifact} | {r.precision} | {r.max_abs_diff:.2e} | {r.allowed_max_abs:.2e} "
                      f"| {r.top1_agreement:.3f} | {size:,.0f} | {seconds:.1f} |")
            batch = np.load(out / "parity_batch.npy", allow_pickle=False)
            with torch.no_grad():
                reference = ckpt.model(torch.from_numpy(batch)).numpy()
            diff, agree, used = bf16_row(out, reference, batch)
            print(f"| {label} | openvino, bf16 (unpinned, {used}) | - | {diff:.2e} | - | {agree:.3f} | - | - |")
            if report.int8:
                d, p = report.int8, report.manifest["int8"]["parity"]
                print(f"| {label} | onnx_int8 ({'kept' if d.kept else 'dropped'}: {d.speedup:.2f}x, "
                      f"drop {d.accuracy_drop:.3f}) | int8 | {p['max_abs_diff']:.2e} | - | {p['top1_agreement']:.3f} "
                      f"| - | - |")


def _files(manifest: dict, first: str) -> list[str]:
    """The file and, for an OpenVINO .xml, its .bin."""
    return [first, first[:-4] + ".bin"] if first.endswith(".xml") else [first]


if __name__ == "__main__":
    main()
