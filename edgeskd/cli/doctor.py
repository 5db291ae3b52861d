"""`edgeskd doctor`: what this machine offers (versions, runtimes, providers, CPU features, GPU, TensorRT)."""

from __future__ import annotations

import argparse

from edgeskd.cli._common import add_json_flag, print_json


def register(sub, name, help_text):
    parser = sub.add_parser(name, help=help_text, description=help_text)
    add_json_flag(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from edgeskd.doctor import report

    info = report()
    if args.json:
        print_json(info)
        return 0
    print(f"python      {info['python']} on {info['platform']}")
    cpu = info["cpu"]
    print(f"cpu         {cpu['model']} ({cpu['arch']}, {cpu['logical_cores']} logical cores)")
    print(f"cpu flags   {' '.join(cpu['flags']) or '-'}")
    gpus = info["gpus"]
    print("gpu         " + ("; ".join(f"{g['name']} (driver {g['driver']}, sm {g['compute_capability']})" for g in gpus)
                            if gpus else "none found (nvidia-smi absent or no device)"))
    if info["jetson_power_mode"]:
        print(f"jetson      {info['jetson_power_mode']}")
    print("runtimes")
    for name, data in info["runtimes"].items():
        if "error" in data:
            print(f"  {name:<12} missing: {data['error']}")
        else:
            extra = {k: v for k, v in data.items() if k != "version"}
            print(f"  {name:<12} {data['version']}  " + "  ".join(f"{k}={v}" for k, v in extra.items()))
    print("packages")
    for name, version in info["packages"].items():
        print(f"  {name:<16} {version or '-'}")
    return 0
