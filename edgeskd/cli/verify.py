"""`edgeskd verify BUNDLE`: re-check a bundle's file hashes, manifest schema and parity with PyTorch."""

from __future__ import annotations

import argparse

from edgeskd.cli._common import add_json_flag, print_json


def register(sub, name, help_text):
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("bundle", help="bundle folder written by 'edgeskd export' (or its manifest.json)")
    parser.add_argument("--no-parity", action="store_true",
                        help="check hashes and schema only (no model is run)")
    parser.add_argument("--manifest-sha256", metavar="HEX",
                        help="the sha256 manifest.json must have (pin the bundle you deployed; the C runtime's "
                             "classify takes the same option)")
    add_json_flag(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from edgeskd.export import verify_bundle

    report = verify_bundle(args.bundle, parity=not args.no_parity, manifest_sha256=args.manifest_sha256)
    if args.json:
        print_json(report.to_dict())
    else:
        print("\n".join(report.lines()))
    return 0
