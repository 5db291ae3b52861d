"""`edgeskd data SOURCE`: load and validate a dataset, print images per split and class (or JSON)."""

from __future__ import annotations

import argparse

from edgeskd.cli._common import add_data_options, add_json_flag, data_options, print_json


def register(sub, name, help_text):
    parser = sub.add_parser(
        name, help=help_text, description=help_text,
        epilog="SOURCE: a folder root/<class>/<image> (PNG, JPEG, BMP, TIFF, DICOM), a folder "
               "root/{train,val,test}/<class>/<image>, a MedMNIST .npz file, or a built-in set: "
               "chest-xray-samples, brain-mri-samples, fashion-mnist.")
    parser.add_argument("source", metavar="SOURCE", help="dataset folder, MedMNIST .npz file or built-in name")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and train-fraction (default 0)")
    add_data_options(parser)
    add_json_flag(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from edgeskd._limits import check_finite
    from edgeskd.data import load_dataset
    from edgeskd.errors import DataError

    for name, value in zip(("centre", "width"), args.dicom_window or ()):
        check_finite(value, f"--dicom-window {name}", DataError)
    if args.dicom_window and args.dicom_window[1] < 1:
        raise DataError(f"--dicom-window width must be >= 1; got {args.dicom_window[1]:g}")

    splits = load_dataset(args.source, seed=args.seed, progress=True, **data_options(args))
    summary = splits.summary()
    summary["seed"] = args.seed
    summary["train_fraction"] = args.train_fraction
    if args.json:
        print_json(summary)
        return 0
    print(format_table(summary))
    return 0


def format_table(summary: dict) -> str:
    """Per-class counts with one column per split and a total row."""
    parts = list(summary["splits"])
    classes = summary["classes"]
    width = max([len("images")] + [len(c) for c in classes])
    cols = parts + (["total"] if not summary["multilabel"] else [])
    header = f"{'label' if summary['multilabel'] else 'class':<{width}}  " + "  ".join(f"{p:>10}" for p in cols)
    lines = [header, "-" * len(header)]
    for cls in classes:
        counts = [summary["splits"][p]["per_class"][cls] for p in parts]
        if not summary["multilabel"]:
            counts.append(sum(counts))
        lines.append(f"{cls:<{width}}  " + "  ".join(f"{n:>10}" for n in counts))
    totals = [summary["splits"][p]["count"] for p in parts] + ([summary["total"]] if not summary["multilabel"] else [])
    lines.append(f"{'images':<{width}}  " + "  ".join(f"{n:>10}" for n in totals))
    size = summary["image_size"]
    kind = "multi-label" if summary["multilabel"] else "classes"
    about = (f"dataset {summary['name']}: {summary['total']} images, {len(classes)} {kind}, "
             f"pixels {'/'.join(summary['dtypes'])}, channels {'/'.join(map(str, summary['channels']))}")
    if size:
        lo, hi = size["min_hw"], size["max_hw"]
        about += f", size (HxW) {lo[0]}x{lo[1]}" + (f" .. {hi[0]}x{hi[1]}" if lo != hi else "")
    about += f"\nsource {summary['source']}  seed {summary['seed']}  train fraction {summary['train_fraction']}"
    if summary["multilabel"]:
        about += "\n(multi-label: per-label counts are positives)"
    return about + "\n\n" + "\n".join(lines)
