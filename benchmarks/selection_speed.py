"""How long weight selection takes: ViT-B -> ViT-T (randomly initialised ViT-B, no download) and the real
EfficientNet-Lite0 -> a half-width, half-depth student. Prints a markdown table (median of rounds, one thread).

    .venv/bin/python benchmarks/selection_speed.py [--rounds 5]

Timings on a shared machine are noisy: read the medians, and the min/max spread beside them."""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _time(fn, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from edgeskd.models import StudentSpec, build_student, create_model, load_teacher
    from edgeskd.selection import select_dual, select_weights

    cases = [("vit_base_patch16_224 -> vit_tiny_patch16_224", create_model("vit_base_patch16_224"),
              create_model("vit_tiny_patch16_224"))]
    try:
        lite0 = load_teacher("tf_efficientnet_lite0")
        cases.append(("tf_efficientnet_lite0 -> x0.5 depth/width", lite0,
                      build_student(StudentSpec("tf_efficientnet_lite0", depth=0.5, width=0.5), lite0)))
    except Exception as exc:  # the weights package may be missing: the ViT case still runs
        print(f"(skipping Lite0: {exc})")

    print(f"| teacher -> student | strategy | median s | min s | max s | kept fraction |")
    print("|---|---|---|---|---|---|")
    for name, teacher, student in cases:
        for strategy in ("uniform+first", "random:seed=0+even", "magnitude+first"):
            sel = select_weights(teacher, student, strategy)  # warm-up, and the report
            times = _time(lambda: select_weights(teacher, student, strategy), args.rounds)
            print(f"| {name} | {strategy} | {statistics.median(times):.3f} | {min(times):.3f} | {max(times):.3f} | "
                  f"{sel.report['kept_fraction']:.3f} |")
        times = _time(lambda: select_dual(teacher, student), args.rounds)
        print(f"| {name} | dual (uniform+first, uniform:offset=1+even) | {statistics.median(times):.3f} | "
              f"{min(times):.3f} | {max(times):.3f} | |")
    print(f"\ntorch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds after one warm-up")


if __name__ == "__main__":
    main()
