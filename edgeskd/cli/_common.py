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
