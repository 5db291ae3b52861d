"""Small helpers shared by the command modules."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one machine-readable JSON object on stdout")


def print_json(obj: Any) -> None:
    from edgeskd._io import _json_default

    json.dump(obj, sys.stdout, indent=2, default=_json_default)
    sys.stdout.write("\n")


def not_yet(parser_name: str, issue: str):
    """run() for a command whose stage has not landed yet: says so and fails, never pretends."""

    def run(args: argparse.Namespace) -> int:
        from edgeskd.errors import EdgeskdError

        raise EdgeskdError(f"'edgeskd {parser_name}' is not implemented yet ({issue})")

    return run


def register_placeholder(sub, name: str, help_text: str, issue: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=f"{help_text} [not implemented yet]", description=help_text)
    parser.set_defaults(func=not_yet(name, issue))
    return parser


# --- Data options: one definition shared by `edgeskd data`, `train` and `search`, so they cannot drift apart. ------
# The dataset itself is named per command (data: SOURCE, train/search: --data); everything about how it is read and
# split is here. data_options() turns the parsed flags into load_dataset() keyword arguments.

def add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data options (shared by edgeskd data, train and search)")
    group.add_argument("--train-fraction", type=float, default=1.0,
                       help="keep this stratified fraction of train as labelled; the rest is unlabelled "
                            "(0 < f <= 1; default 1)")
    group.add_argument("--val-fraction", type=float, default=0.15,
                       help="val share when the source has no split of its own (default 0.15)")
    group.add_argument("--test-fraction", type=float, default=0.15,
                       help="test share when the source has no split of its own (default 0.15)")
    group.add_argument("--same-size", action="store_true", help="fail unless all images have one size")
    group.add_argument("--dicom-window", type=float, nargs=2, metavar=("CENTRE", "WIDTH"),
                       help="VOI window for DICOM files, e.g. 40 400 (default: each file's own window; a folder "
                            "mixing CT and MR needs one)")


def data_options(args: argparse.Namespace) -> dict[str, Any]:
    """load_dataset() keyword arguments from the flags add_data_options() defined (seed excluded)."""
    return {"train_fraction": args.train_fraction, "val_fraction": args.val_fraction,
            "test_fraction": args.test_fraction, "allow_mixed_sizes": not args.same_size,
            "dicom_window": tuple(args.dicom_window) if args.dicom_window else None}


def add_teacher_num_classes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher-num-classes", type=int, default=None, metavar="N",
                        help="classifier size of the teacher weight file (default: read from the file; any size "
                             "works, e.g. 2, 14 or ImageNet-21k's 21843; the student's head stays its own)")
