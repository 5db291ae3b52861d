"""Classification metrics from predicted probabilities (numpy only, so they are easy to check by hand).

Single-label: accuracy, balanced accuracy, macro-F1, per-class sensitivity/specificity, one-vs-rest AUROC, expected
calibration error (top-1 confidence, equal-width bins), confusion matrix (rows = true class, columns = predicted).
Multi-label (ChestMNIST style): per-label AUROC, sensitivity and specificity at threshold 0.5, macro-F1 over labels,
element-wise accuracy and ECE over all label probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); None when one class is absent."""
    positive = positive.astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    i = 0
    while i < len(scores):  # average ranks over runs of equal scores
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> tuple[float, dict]:
    """ECE over equal-width confidence bins, and the per-bin table the reliability diagram draws."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    table = {"edges": edges.tolist(), "count": [], "confidence": [], "accuracy": []}
    ece = 0.0
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        conf = float(confidence[mask].mean()) if n else None
        acc = float(correct[mask].mean()) if n else None
        table["count"].append(n)
        table["confidence"].append(conf)
        table["accuracy"].append(acc)
        if n:
            ece += n / len(confidence) * abs(acc - conf)
    return float(ece), table


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def single_label_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    n, k = probs.shape
    pred = probs.argmax(1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(1).astype(np.float64)
    predicted = confusion.sum(0).astype(np.float64)
    fp, fn = predicted - tp, support - tp
    tn = n - tp - fp - fn
    sensitivity = [float(tp[c] / support[c]) if support[c] else None for c in range(k)]
    specificity = [float(tn[c] / (tn[c] + fp[c])) if tn[c] + fp[c] else None for c in range(k)]
    f1 = [float(2 * tp[c] / (2 * tp[c] + fp[c] + fn[c])) if (2 * tp[c] + fp[c] + fn[c]) else None for c in range(k)]
    aurocs = [auroc(probs[:, c], labels == c) for c in range(k)]
    ece, reliability = expected_calibration_error(probs.max(1), pred == labels)
    return {
        "n": int(n), "multilabel": False, "classes": list(classes),
        "accuracy": float((pred == labels).mean()),
        "balanced_accuracy": _mean(sensitivity),
        "macro_f1": _mean([f if support[c] else None for c, f in enumerate(f1)]),
        "auroc_macro": _mean(aurocs),
        "ece": ece,
        "nll": float(-np.log(np.clip(probs[np.arange(n), labels], 1e-12, 1.0)).mean()),
        "per_class": {name: {"sensitivity": sensitivity[c], "specificity": specificity[c], "f1": f1[c],
                             "auroc": aurocs[c], "support": int(support[c])} for c, name in enumerate(classes)},
        "confusion_matrix": confusion.tolist(),
        "reliability": reliability,
    }


def multi_label_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    labels = labels.astype(bool)
    pred = probs >= 0.5
    per_label: dict[str, Any] = {}
    aurocs, f1s, sens_all = [], [], []
    for c, name in enumerate(classes):
        tp = int((pred[:, c] & labels[:, c]).sum())
        fp = int((pred[:, c] & ~labels[:, c]).sum())
        fn = int((~pred[:, c] & labels[:, c]).sum())
        tn = int((~pred[:, c] & ~labels[:, c]).sum())
        sens = tp / (tp + fn) if tp + fn else None
        spec = tn / (tn + fp) if tn + fp else None
        f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else None
        a = auroc(probs[:, c], labels[:, c])
        aurocs.append(a)
        f1s.append(f1)
        sens_all.append((sens, spec))
        per_label[name] = {"auroc": a, "sensitivity": sens, "specificity": spec, "f1": f1,
                           "support": int(labels[:, c].sum())}
    flat_p, flat_y = probs.ravel(), labels.ravel()
    ece, reliability = expected_calibration_error(np.maximum(flat_p, 1 - flat_p), (flat_p >= 0.5) == flat_y)
    balanced = _mean([None if s is None or t is None else (s + t) / 2 for s, t in sens_all])
    return {
        "n": int(len(probs)), "multilabel": True, "classes": list(classes),
        "accuracy": float((pred == labels).mean()),        # element-wise over (image, label)
        "exact_match": float((pred == labels).all(1).mean()),
        "balanced_accuracy": balanced,                     # mean over labels of (sensitivity + specificity) / 2
        "macro_f1": _mean(f1s),
        "auroc_macro": _mean(aurocs),
        "ece": ece,
        "per_label": per_label,
        "reliability": reliability,
    }


def classification_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str], multilabel: bool) -> dict:
    """Probabilities (softmax for single-label, sigmoid for multi-label) and true labels -> the metrics dict."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if len(probs) == 0:
        raise ValueError("cannot compute metrics on an empty set")
    return (multi_label_metrics if multilabel else single_label_metrics)(probs, labels, classes)
