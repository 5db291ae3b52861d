"""The `edgeskd` command line: a table of commands, one module each under edgeskd/cli/.

Each command module defines `register(subparsers) -> argparse.ArgumentParser` (setting `func=run` on it) and
`run(args) -> int`. Modules import heavy libraries (torch, timm, runtimes) inside `run`, so `edgeskd --help` is fast.
Errors a user can fix are EdgeskdError: printed as one line `edgeskd <cmd>: error: ...`, exit code 2; so is an
OSError the operating system raises while writing (full disk, read-only folder), commands
name what they were writing through cli/_output.py.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edgeskd import __version__

# name -> (module, one-line help). The order is the order of the product's pipeline.
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("edgeskd.cli.doctor", "print versions, runtimes, execution providers, CPU features and GPUs found"),
    "data": ("edgeskd.cli.data", "inspect and validate a dataset (image folder, MedMNIST .npz, DICOM, built-in sets)"),
    "select": ("edgeskd.cli.select", "dual weight selection: teacher weights -> two student initialisations"),
    "train": ("edgeskd.cli.train", "train a student (default: weight selection + CE; SKD methods and baselines "
                                   "to compare)"),
    "export": ("edgeskd.cli.export", "export a checkpoint to ONNX / OpenVINO / TensorRT with parity gates, as a bundle"),
    "verify": ("edgeskd.cli.verify", "re-check a bundle: file hashes, manifest schema and parity"),
    "bench": ("edgeskd.cli.bench", "measure latency of a model or bundle on a target; CI gate with --assert-latency-ms"),
    "agent": ("edgeskd.cli.agent", "latency service for a remote device (Jetson, bedside PC), used as remote://host:port"),
    "search": ("edgeskd.cli.search", "hardware-aware search: best student under a latency budget, as a deployable bundle"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeskd",
        description="Turn a large pretrained vision model into a small, fast, verified classifier for a bedside device.",
        epilog="Run 'edgeskd COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"edgeskd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (module, help_text) in COMMANDS.items():
        importlib.import_module(module).register(sub, name, help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    from edgeskd.errors import EdgeskdError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EdgeskdError as exc:
        print(f"edgeskd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write (or read) the operating system refused: one line, not a traceback
        where = f": {exc.filename}" if exc.filename else ""
        print(f"edgeskd {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgeskd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
