"""The search report: report.md and report.html (same content) with pareto.png, latency_map.png and confusion.png.

Contents: the budget and what was searched, how the trials ended (trained: completed / pruned by metric; not
trained: refused as known over budget / reused duplicates / over budget at their own probe), where the time went,
the latency map (latency vs parameters of every mapped candidate, with the budget line), the Pareto plot of metric
vs latency, every trial in a table, and the winner (re-measured latency, validation and test metrics, confusion
matrix, bundle).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from edgeskd._io import atomic_path, atomic_write_text
from edgeskd.search.records import COMPLETED, OVER_BUDGET, PRUNED_BY_METRIC

COLOURS = {COMPLETED: "tab:blue", PRUNED_BY_METRIC: "tab:orange", OVER_BUDGET: "tab:red"}


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)


DEPLOY_MARKERS = ("o", "s", "D", "^", "P", "*", "h")


def _deploy_label(row: dict[str, Any]) -> str:
    d = row.get("deployment") or {}
    return d.get("label") or (f"{d.get('runtime')}:{d.get('precision')}" if d else "")


def _save_png(fig: Any, path: Path) -> Path:
    """Write a finished figure as PNG atomically and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def pareto_plot(path: Path, rows: list[dict[str, Any]], summary: dict[str, Any], winner: dict | None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for outcome, colour in COLOURS.items():
        pts = [r for r in rows if r["outcome"] == outcome and r["latency_ms"] is not None]
        if outcome == OVER_BUDGET:  # untrained: no metric, drawn on the x axis
            ax.scatter([r["latency_ms"] for r in pts], [0.0] * len(pts), marker="x", c=colour,
                       label=f"over budget, not trained ({len(pts)})")
        elif outcome == PRUNED_BY_METRIC:
            ax.scatter([r["latency_ms"] for r in pts], [r.get("last_metric") or 0.0 for r in pts], marker="v",
                       c=colour, label=f"pruned by metric ({len(pts)})")
        else:  # one marker per runtime:precision (one group without deploy choices); hollow: latency bound only
            labels = sorted({_deploy_label(r) for r in pts})
            for i, label in enumerate(labels):
                group = [r for r in pts if _deploy_label(r) == label]
                marker = DEPLOY_MARKERS[i % len(DEPLOY_MARKERS)]
                name = f"completed {label}".rstrip()
                measured = [r for r in group if not r.get("latency_bound")]
                if measured:
                    ax.scatter([r["latency_ms"] for r in measured], [r["metric"] for r in measured], c=colour,
                               marker=marker, label=f"{name} ({len(measured)})")
                bound = [r for r in group if r.get("latency_bound")]
                if bound:  # never measured: drawn at the latency of a larger measured candidate (an upper bound)
                    ax.scatter([r["latency_ms"] for r in bound], [r["metric"] for r in bound], marker=marker,
                               facecolors="none", edgecolors=colour, label=f"{name}, latency at most ({len(bound)})")
    done = sorted((r for r in rows if r["outcome"] == COMPLETED and r["latency_ms"] is not None),
                  key=lambda r: (r["latency_ms"], -r["metric"]))
    front, best = [], float("-inf")
    for r in done:  # non-dominated: faster ones first, keep each that beats every faster one
        if r["metric"] > best:
            front.append(r)
            best = r["metric"]
    if front:
        ax.step([r["latency_ms"] for r in front], [r["metric"] for r in front], where="post", c="tab:blue", lw=1,
                alpha=0.6, label="Pareto front")
    if winner:
        lat = (winner.get("search_latency_ms") or {}).get(summary["statistic"])
        if lat is not None:
            ax.scatter([lat], [winner["search_metric"]], s=160, facecolors="none", edgecolors="k", label="winner")
    ax.axvline(summary["budget_ms"], c="k", ls="--", lw=1, label=f"budget {summary['budget_ms']:g} ms")
    ax.set_xlabel(f"{summary['statistic']} latency on {summary['target']} (ms)")
    ax.set_ylabel(f"validation {summary['metric']}")
    ax.set_title(f"search {summary['study']}")
    ax.legend(fontsize=7, loc="best")
    return _save_png(fig, path)


def latency_map_plot(path: Path, latency_map: dict[str, Any], summary: dict[str, Any]) -> Path:
    """Latency vs parameters of every candidate in the latency map, under-budget ones apart, with the budget."""
    import matplotlib

    from edgeskd.search.latency_map import deploy_label

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stat = summary["statistic"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    # colour: under/over budget; with deploy choices one marker per runtime:precision (else o / x as before)
    labels = latency_map.get("deployments") or []
    markers = dict(zip(labels, "osD^v<>pPX*h"))
    for ok, colour, label in ((True, "tab:blue", "under budget" + ("" if labels else " (offered)")),
                              (False, "tab:red", "over budget")):
        for deploy in labels or [None]:
            pts = [e for e in latency_map["entries"] if e["ok"] is ok and stat in e["latency_ms"]
                   and deploy_label(e.get("deployment")) == deploy]
            if deploy is not None and not pts:
                continue
            ax.scatter([e["parameters"] for e in pts], [e["latency_ms"][stat] for e in pts], c=colour,
                       marker=markers.get(deploy, "o" if ok else "x"),
                       label=f"{label}{'' if deploy is None else ' ' + deploy} ({len(pts)})")
    ax.axhline(summary["budget_ms"], c="k", ls="--", lw=1, label=f"budget {summary['budget_ms']:g} ms")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(f"{stat} latency on " + ("each deployment's target" if labels else summary["target"]) + " (ms)")
    ax.set_title(f"latency map: {latency_map['size']} candidates"
                 + ("" if latency_map["complete"] else " (sample of a continuous space)"))
    ax.legend(fontsize=7, loc="best")
    return _save_png(fig, path)


def confusion_plot(path: Path, matrix: list[list[int]], classes: list[str], title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.asarray(matrix)
    size = max(3.2, 0.45 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size), dpi=110)
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return _save_png(fig, path)


def _sections(summary: dict[str, Any], rows: list[dict[str, Any]], winner: dict | None) -> list[tuple[str, Any]]:
    """Report content as (kind, payload) items, rendered to markdown and HTML alike."""
    out: list[tuple[str, Any]] = [("h1", f"edgeskd search: {summary['study']}")]
    facts = [f"teacher **{summary['teacher']}**, data **{summary['data']}**, target **{summary['target']}**",
             f"budget: {summary['statistic']} <= {summary['budget_ms']:g} ms (hard gate, checked before training)",
             f"objective: validation {summary['metric']}" + (" and latency (Pareto)" if summary["pareto"] else ""),
             f"study storage: {summary['storage']}",
             "trials: " + (", ".join(f"{v} {k}" for k, v in summary["counts"].items()) or "none"),
             f"trainings (what --trials counts): {summary.get('trained', 0)}; not trained: "
             f"{summary.get('reused', 0)} reused (same configuration as an earlier trial), "
             f"{summary.get('refused', 0)} refused (over budget)",
             f"search wall time {summary['search_seconds']:.1f} s; probing (build + measure) "
             f"{summary['time']['probe_seconds']:.1f} s, training {summary['time']['train_seconds']:.1f} s, "
             f"time on over-budget candidates {summary['time']['infeasible_seconds']:.1f} s of which training "
             f"{summary['time']['infeasible_train_seconds']:.1f} s"]
    if summary.get("note"):
        facts.insert(0, f"**{summary['note']}**")
    if summary.get("deployments"):
        facts.append("deployments searched: " + "; ".join(summary["deployments"]))
    if (summary.get("validation") or {}).get("text"):
        facts.append(f"**{summary['validation']['text']}**")
    out.append(("list", facts))
    if summary.get("error"):
        out.append(("p", f"**Search failed:** {summary['error']}"))
    if winner:
        out.append(("h2", f"Winner: trial {winner['trial']}"))
        s = winner["student"]
        lat = winner["latency_ms"]
        items = [f"student: depth {s['depth']}, width {s['width']}, resolution {s['resolution']} "
                 f"({_fmt(winner['parameters'])} parameters, {_fmt(winner['macs'])} MACs)",
                 f"selection strategies: A {winner['train_config'].get('strategy_a')}, "
                 f"B {winner['train_config'].get('strategy_b')}",
                 f"re-measured after full training: {summary['statistic']} {lat.get(summary['statistic'], 0):.3f} ms, "
                 f"p50 {lat.get('p50', 0):.3f} ms, n {int(lat.get('n', 0))} -> "
                 + ("**meets the budget**" if winner["budget_ok"] else "**MISSES the budget**")
                 + f" ({winner['budget_reason']})",
                 f"validation {summary['metric']} {winner['val_metric']:.4f} (search-schedule trial: "
                 f"{winner['search_metric']:.4f})"]
        for skipped in summary.get("rejected_on_remeasure") or []:
            items.append(f"trial {skipped['trial']} ranked higher but missed the budget when re-measured before "
                         f"final training, so it was skipped: {skipped['reason']}")
        if winner.get("test"):
            t = winner["test"]
            items.append(f"test (n={t.get('n')}): accuracy {_fmt(t.get('accuracy'))}, balanced accuracy "
                         f"{_fmt(t.get('balanced_accuracy'))}, macro-F1 {_fmt(t.get('macro_f1'))}, AUROC "
                         f"{_fmt(t.get('auroc_macro'))}")
        artifact = winner.get("artifact")
        if artifact:
            items.append(f"deployed as **{artifact['label']}** ({artifact['runtime']}, {artifact['precision']}): "
                         f"{artifact['split']} {summary['metric']} {artifact['metric']:.4f} through the artifact, "
                         f"PyTorch fp32 {artifact['pytorch_metric']:.4f} (drop {artifact['metric_drop']:+.4f}, top-1 "
                         f"agreement {_fmt(artifact.get('top1_agreement'))})"
                         + (f"; int8 calibrated on {artifact['calibration']['images']} training images "
                            f"({artifact['calibration']['sha256'][:19]}...)" if artifact.get("calibration") else ""))
        items.append(f"bundle: {winner['bundle'] or 'not written'}")
        out.append(("list", items))
        if winner.get("confusion_matrix"):
            out.append(("img", ("confusion.png", "confusion matrix of the winner")))
    lmap = summary.get("latency_map")
    if lmap:
        out.append(("h2", "Latency map"))
        out.append(("list", [
            f"{lmap['size']} candidate "
            + (f"architecture x deployment pairs ({', '.join(lmap['deployments'])}, each measured on its own "
               "artifact) " if lmap.get("deployments") else "architectures ")
            + "known before the first training "
            + ("(every architecture of the space)" if lmap["complete"] else "(a sample of a continuous space; the "
               "rest are measured by trials)")
            + f": {lmap['measured']} measured, {lmap['size'] - lmap['measured']} inferred (latency does not fall "
              f"when depth, width or resolution grows; never inferred across deployments); {lmap['feasible']} under "
              "the budget"
            + ((" were the only ones offered to the sampler" if not lmap.get("deployments") else
                ": only their architectures were offered, and a pair over budget was refused unbuilt")
               if lmap["complete"] else ""),
            f"this run measured {lmap['measured_here']} of them in {lmap['seconds']:.1f} s; the others came from "
            f"the study (an earlier run or the search that started this worker); the map is in latency_map.json"]))
        out.append(("img", ("latency_map.png", "latency vs parameters of the mapped candidates")))
    out.append(("h2", "Metric vs latency"))
    out.append(("img", ("pareto.png", "Pareto plot")))
    out.append(("h2", "Trials"))
    header = ["#", "outcome", "deployment", f"{summary['statistic']} ms (<=: bound, inferred)", summary["metric"],
              "fp32 torch", "depth", "width", "res", "strategies", "params", "MACs", "probe s", "train s", "note"]
    body = [[r["number"], r["outcome"], _deploy_label(r) or "-",
             ("<= " if r.get("latency_bound") else "") + _fmt(r["latency_ms"]), _fmt(r["metric"]),
             _fmt((r.get("deployment") or {}).get("pytorch_metric")), _fmt(r["depth"]),
             _fmt(r["width"]), _fmt(r["resolution"]), r["strategies"], _fmt(r["parameters"]), _fmt(r["macs"]),
             _fmt(r["probe_seconds"], 3), _fmt(r["train_seconds"], 3),
             (r["reason"] + (f" (re-run of {r['retry_of']})" if r["retry_of"] is not None else ""))[:120]]
            for r in sorted(rows, key=lambda r: r["number"])]
    out.append(("table", (header, body)))
    return out


def _markdown(items: list[tuple[str, Any]]) -> str:
    lines: list[str] = []
    for kind, payload in items:
        if kind == "h1":
            lines += [f"# {payload}", ""]
        elif kind == "h2":
            lines += [f"## {payload}", ""]
        elif kind == "p":
            lines += [payload, ""]
        elif kind == "list":
            lines += [f"- {x}" for x in payload] + [""]
        elif kind == "img":
            lines += [f"![{payload[1]}]({payload[0]})", ""]
        elif kind == "table":
            header, body = payload
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
            lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in body]
            lines.append("")
    return "\n".join(lines)


def _html(items: list[tuple[str, Any]]) -> str:
    import re

    def inline(text: str) -> str:
        return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(str(text)))

    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>edgeskd search report</title><style>"
             "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
             "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>"]
    for kind, payload in items:
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{inline(payload)}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{inline(payload)}</p>")
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{inline(x)}</li>" for x in payload) + "</ul>")
        elif kind == "img":
            parts.append(f"<img src='{html.escape(payload[0])}' alt='{html.escape(payload[1])}'>")
        elif kind == "table":
            header, body = payload
            parts.append("<table><tr>" + "".join(f"<th>{inline(h)}</th>" for h in header) + "</tr>"
                         + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in body)
                         + "</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dir: Path, summary: dict[str, Any], rows: list[dict[str, Any]], winner: dict | None) -> Path:
    pareto_plot(run_dir / "pareto.png", rows, summary, winner)
    if summary.get("latency_map"):
        import json

        from edgeskd.search.latency_map import MAP_NAME

        latency_map_plot(run_dir / "latency_map.png", json.loads((run_dir / MAP_NAME).read_text()), summary)
    if winner and winner.get("confusion_matrix"):
        split = "test" if winner.get("test") else "validation"
        confusion_plot(run_dir / "confusion.png", winner["confusion_matrix"], winner["classes"],
                       f"winner (trial {winner['trial']}), {split} split")
    items = _sections(summary, rows, winner)
    atomic_write_text(run_dir / "report.md", _markdown(items))
    atomic_write_text(run_dir / "report.html", _html(items))
    return run_dir / "report.md"
