"""PNG plots of a run: training curves, confusion matrix, reliability diagram (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeskd._io import atomic_path


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def save_plots(out: Path, history: list[dict[str, Any]], metrics: dict[str, Any], monitor: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    epochs = [r["epoch"] for r in history]
    for key in sorted({k for r in history for k in r if k.startswith("loss_")}):
        ax1.plot(epochs, [r.get(key) for r in history], label=key[5:])
    ax1.set_xlabel("epoch"), ax1.set_ylabel("training loss"), ax1.legend(fontsize=8)
    val = [(r["epoch"], r["val_" + monitor]) for r in history if r.get("val_" + monitor) is not None]
    if val:
        ax2.plot(*zip(*val), marker="o", label=f"val {monitor}")
    ax2.set_xlabel("epoch"), ax2.set_ylabel(f"val {monitor}")
    for r in history:
        if r["stage"] == "finetune" and r["stage_epoch"] == 1:
            for ax in (ax1, ax2):
                ax.axvline(r["epoch"] - 0.5, color="grey", ls="--", lw=0.8)
    fig.suptitle("training curves (dashed: fine-tuning starts)")
    _save(fig, out / "curves.png")
    written.append(out / "curves.png")

    split = "test" if metrics.get("test") else "val"
    m = metrics[split]
    if not m.get("multilabel"):
        cm = m["confusion_matrix"]
        k = len(cm)
        fig, ax = plt.subplots(figsize=(1.2 + 0.5 * k, 1 + 0.5 * k))
        ax.imshow(cm, cmap="Blues")
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i][j]), ha="center", va="center", fontsize=7)
        ax.set_xticks(range(k), m["classes"], rotation=90, fontsize=7)
        ax.set_yticks(range(k), m["classes"], fontsize=7)
        ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(f"confusion matrix ({split})")
        _save(fig, out / "confusion.png")
        written.append(out / "confusion.png")

    rel = m["reliability"]
    fig, ax = plt.subplots(figsize=(4, 4))
    centres = [(a + b) / 2 for a, b in zip(rel["edges"][:-1], rel["edges"][1:])]
    width = rel["edges"][1] - rel["edges"][0]
    acc = [a if a is not None else 0 for a in rel["accuracy"]]
    ax.bar(centres, acc, width=width, edgecolor="black", alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_xlabel("confidence"), ax.set_ylabel("accuracy")
    ax.set_title(f"reliability ({split}), ECE {m['ece']:.3f}")
    ax.legend(fontsize=8)
    _save(fig, out / "reliability.png")
    written.append(out / "reliability.png")
    return written
