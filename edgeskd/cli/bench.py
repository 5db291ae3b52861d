"""`edgeskd bench MODEL.onnx|BUNDLE --target T ...`: latency per target as a table, JSON or CSV; a CI gate.

Exit status: 0 all targets measured (and within the budget when --assert-latency-ms is given); 1 a target could
not be measured or missed the budget (one line on stderr says which); 2 bad input.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from edgeskd.cli._common import add_json_flag, print_json

_COLUMNS = ("target", "mode", "status", "size_mb", "p50_ms", "p95_ms", "p99_ms", "cv", "throughput_ips")


def register(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text, epilog=(
        "targets: ort-cpu, openvino-cpu[:bf16|:fp16], tensorrt[:fp16], torch-cuda, remote://HOST:PORT[/TARGET] "
        "(token in $EDGESKD_AGENT_TOKEN), a profile name under search/targets/ or a .yaml profile path. "
        "Exit 1 when a target fails or misses the budget."))
    parser.add_argument("model", nargs="?", help="an .onnx file or a bundle folder (manifest.json)")
    parser.add_argument("--target", "-t", action="append", default=None, help="target to measure on (repeatable; "
                        "default ort-cpu)")
    parser.add_argument("--runs", type=int, default=50, help="at least this many timed runs (default 50)")
    parser.add_argument("--seconds", type=float, default=1.0, help="and at least this many seconds (default 1)")
    parser.add_argument("--warmup", type=float, default=0.2, help="warm-up time in seconds (default 0.2)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: the target's, usually 1)")
    parser.add_argument("--precision", default=None, help="override the target's precision (fp32, fp16, bf16)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--raw-size", type=int, default=None, help="side of the 8-bit image for end-to-end timing "
                        "(default: twice the model's input size)")
    parser.add_argument("--no-end-to-end", action="store_true", help="for a bundle, time the model only")
    parser.add_argument("--force-threads", action="store_true",
                        help="allow --threads above this machine's core count (refused by default)")
    parser.add_argument("--max-batch", type=int, default=None, metavar="N",
                        help="raise the batch limit (default 256, sized for an 8 GB device)")
    parser.add_argument("--max-image-side", type=int, default=None, metavar="PX",
                        help="raise the --raw-size limit (default 4096)")
    parser.add_argument("--timeout", type=float, default=300, help="time limit per measurement in seconds")
    parser.add_argument("--assert-latency-ms", type=float, default=None, metavar="MS",
                        help="exit 1 when a target's statistic exceeds MS")
    parser.add_argument("--stat", default=None, help="statistic for the budget (default: the target's, usually p95)")
    parser.add_argument("--compare", default=None, metavar="OTHER.json",
                        help="a saved `bench --json` report: show this/other ratios per target and mode")
    parser.add_argument("--force", action="store_true", help="compare or gate even when fingerprints differ")
    parser.add_argument("--save", default=None, metavar="OUT.json",
                        help="also write the JSON report to this file (checked writable before measuring; the "
                             "report is printed before it is saved)")
    parser.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    parser.add_argument("--list-targets", action="store_true", help="list target names and profiles, then exit")
    add_json_flag(parser)
    parser.set_defaults(func=run)
    return parser


def resolve_model(path_text: str) -> tuple[Path, Any]:
    """(ONNX path, PreprocessSpec or None) for an .onnx file or a bundle folder."""
    from edgeskd.data.preprocess import PreprocessSpec
    from edgeskd.errors import DataError, LatencyError

    path = Path(path_text)
    if path.is_file():
        if path.suffix.lower() != ".onnx":
            raise LatencyError(f"{path} is not an .onnx file or a bundle folder")
        return path, None
    if not path.is_dir():
        raise LatencyError(f"{path} does not exist (expected an .onnx file or a bundle folder)")
    manifest_path = path / "manifest.json"
    from edgeskd._json import read_json

    manifest = read_json(manifest_path, LatencyError, "manifest.json")
    onnx_name = (((manifest.get("model") or {}) if isinstance(manifest, dict) else {}).get("files") or {}).get("onnx")
    if not isinstance(onnx_name, str) or not onnx_name:
        raise LatencyError(f"{manifest_path}: expected model.files.onnx to name the ONNX file")
    onnx_path = (path / onnx_name).resolve()
    if path.resolve() not in onnx_path.parents or not onnx_path.is_file():
        raise LatencyError(f"{manifest_path}: model.files.onnx {onnx_name!r} is not a file inside the bundle")
    spec = None
    if manifest.get("preprocess") is not None:
        try:
            spec = PreprocessSpec.from_dict(manifest["preprocess"])
        except (DataError, TypeError, ValueError, AttributeError) as exc:
            raise LatencyError(f"{manifest_path}: 'preprocess' is not a valid PreprocessSpec: {exc}") from exc
    return onnx_path, spec


def load_report(path: str) -> list[dict[str, Any]]:
    """Rows {target, mode, measurement} from a saved bench report, or from one saved Measurement."""
    from edgeskd.errors import LatencyError

    from edgeskd._json import read_json

    data = read_json(path, LatencyError, "comparison file")
    if isinstance(data, dict) and "results" in data:
        return [r for r in data["results"] if r.get("status") == "ok"]
    if isinstance(data, dict) and "stats" in data:
        target = (data.get("info") or {}).get("target", {}).get("name", "?")
        return [{"target": target, "mode": data.get("mode"), "measurement": data}]
    raise LatencyError(f"{path} is neither a `bench --json` report nor a measurement")


def run(args: argparse.Namespace) -> int:
    from edgeskd.errors import LatencyError
    from edgeskd.latency import Measurement, check_budget, compare, get_target, list_targets, measure

    if args.list_targets:
        print("\n".join(list_targets()))
        return 0
    if not args.model:
        raise LatencyError("give an .onnx file or a bundle folder to measure")
    if args.json and args.csv:
        raise LatencyError("choose one of --json and --csv")
    onnx_path, spec = resolve_model(args.model)
    targets = [get_target(t, threads=args.threads, precision=args.precision) for t in (args.target or ["ort-cpu"])]
    _check_bounds(args, targets)
    if args.save:  # before minutes of measuring: a report that cannot be saved is found out now
        from edgeskd._folders import probe_file_writable

        probe_file_writable(args.save, "--save file")
    modes = [False] + ([True] if spec is not None and not args.no_end_to_end else [])
    size = onnx_path.stat().st_size
    from tqdm import tqdm

    results: list[dict[str, Any]] = []
    jobs = [(t, e2e) for t in targets for e2e in modes]
    for target, e2e in tqdm(jobs, desc="bench", unit="measurement", disable=None, file=sys.stderr):
        row: dict[str, Any] = {"target": target.name, "mode": "end-to-end" if e2e else "model", "size_bytes": size}
        try:
            m = measure(onnx_path, target, runs=args.runs, seconds=args.seconds, warmup_s=args.warmup,
                        batch=args.batch, end_to_end=e2e, preprocess=spec, timeout_s=args.timeout,
                        raw_size=args.raw_size)
            row.update(status="ok", measurement=m.to_dict())
        except LatencyError as exc:  # one failing target must not hide the others' numbers
            row.update(status="error", error=str(exc))
        results.append(row)

    failures: list[str] = [f"{r['target']} ({r['mode']}): {r['error']}" for r in results if r["status"] != "ok"]
    if args.compare:
        others = {(o["target"], o["mode"]): Measurement.from_dict(o["measurement"]) for o in load_report(args.compare)}
        for row in results:
            other = others.get((row["target"], row["mode"]))
            if row["status"] == "ok" and other is not None:
                row["compare"] = compare(Measurement.from_dict(row["measurement"]), other, force=args.force)
    if args.assert_latency_ms is not None:
        for row, target in zip(results, [t for t in targets for _ in modes]):
            if row["status"] != "ok":
                continue
            stat = args.stat or target.statistic
            ok, reason = check_budget(Measurement.from_dict(row["measurement"]), args.assert_latency_ms, stat,
                                      target=target, force=args.force)
            row["budget"] = {"ok": ok, "reason": reason, "budget_ms": args.assert_latency_ms, "statistic": stat}
            if not ok:
                failures.append(f"budget missed: {reason}")

    report = {"model": str(args.model), "onnx": str(onnx_path), "size_bytes": size, "results": results}
    if args.json:
        print_json(report)
    elif args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(_columns(args.compare))
        for row in results:
            writer.writerow(_cells(row, args.compare, digits=6))
    else:
        _print_table([_columns(args.compare)] + [_cells(row, args.compare, digits=3) for row in results])
    if args.save:  # after printing, so a failed save never loses the measurement
        from edgeskd._io import atomic_write_json
        from edgeskd.cli._output import writing

        sys.stdout.flush()
        with writing("--save file"):
            atomic_write_json(args.save, report)
    if failures:
        print(f"edgeskd bench: {failures[0]}" + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""),
              file=sys.stderr)
        return 1
    return 0


def _check_bounds(args: argparse.Namespace, targets: list[Any]) -> None:
    """Threads, batch and image size within the limits of edgeskd._limits (the flags raise them)."""
    from edgeskd._limits import MAX_BATCH, MAX_IMAGE_SIDE, check_measure_settings
    from edgeskd.errors import LatencyError

    settings = {"batch": args.batch, "runs": args.runs, "seconds": args.seconds, "warmup_s": args.warmup,
                "raw_size": args.raw_size, "timeout_s": args.timeout}
    local = [t for t in targets if t.runtime != "remote"]  # a remote device's cores are checked by its agent
    if local:
        settings["threads"] = args.threads if args.threads is not None else max(t.threads for t in local)
    for name in ("max_batch", "max_image_side"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise LatencyError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    check_measure_settings(settings, error=LatencyError, force_threads=args.force_threads,
                           max_batch=args.max_batch or MAX_BATCH, max_image_side=args.max_image_side or MAX_IMAGE_SIDE,
                           hints={"threads": "--force-threads"})


def _columns(with_compare: str | None) -> list[str]:
    return list(_COLUMNS) + (["ratio_p50", "ratio_p95"] if with_compare else [])


def _cells(row: dict[str, Any], with_compare: str | None, digits: int) -> list[str]:
    size = f"{row['size_bytes'] / 1e6:.{digits}f}"
    if row["status"] != "ok":
        cells = [row["target"], row["mode"], "error: " + row["error"], size] + ["-"] * 5
    else:
        m = row["measurement"]
        stats, batch = m["stats"], int(m.get("info", {}).get("batch", 1))
        status = "ok" if "budget" not in row else ("ok" if row["budget"]["ok"] else "over budget")
        cells = [row["target"], row["mode"], status, size, f"{stats['p50']:.{digits}f}", f"{stats['p95']:.{digits}f}",
                 f"{stats['p99']:.{digits}f}", f"{stats['cv']:.3f}", f"{1000.0 * batch / stats['p50']:.1f}"]
    if with_compare:
        ratios = row.get("compare", {}).get("ratios")
        cells += [f"{ratios['p50']:.3f}", f"{ratios['p95']:.3f}"] if ratios else ["-", "-"]
    return cells


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
