"""`edgeskd export`: checkpoint -> bundle (ONNX, OpenVINO IR, optionally TensorRT and INT8), every artifact gated on
parity with PyTorch."""

from __future__ import annotations

import argparse

from edgeskd.cli._common import add_json_flag, print_json


def register(sub, name, help_text):
    parser = sub.add_parser(
        name, help=help_text, description=help_text,
        epilog="Example: edgeskd export runs/best/student.safetensors --formats onnx,openvino --out bundle "
               "--parity-data chest-xray-samples")
    parser.add_argument("checkpoint", help="student checkpoint (.safetensors written by 'edgeskd train')")
    parser.add_argument("--out", required=True, help="bundle folder to create (must not exist unless --overwrite)")
    parser.add_argument("--formats", default="onnx,openvino",
                        help="comma-separated: onnx, openvino, tensorrt (default onnx,openvino; onnx is always "
                             "included; tensorrt is skipped with the reason where TensorRT or a GPU is absent)")
    parser.add_argument("--tensorrt-precision", choices=("fp16", "fp32"), default="fp16",
                        help="precision of the TensorRT engine (default fp16)")
    parser.add_argument("--parity-data", metavar="DATASET",
                        help="real images for the parity check: a built-in dataset name (e.g. chest-xray-samples), "
                             "an image folder or a MedMNIST .npz (default: seeded random-pixel images)")
    parser.add_argument("--parity-images", type=int, default=32, metavar="N",
                        help="at most N images from --parity-data (default 32)")
    parser.add_argument("--int8", action="store_true",
                        help="also try ONNX Runtime static INT8; kept only if faster here and within "
                             "--max-accuracy-drop")
    parser.add_argument("--max-accuracy-drop", type=float, default=0.01,
                        help="largest accuracy loss (fraction) INT8 may cost (default 0.01)")
    parser.add_argument("--latency", metavar="JSON", help="a latency measurement (JSON from 'edgeskd bench --json') "
                                                          "to record in the manifest")
    parser.add_argument("--primary", metavar="RUNTIME:PRECISION",
                        help="the model the device runs, e.g. openvino:int8 or ort:int8 (built by the runtime adapter, "
                             "gated by top-1 agreement and accuracy drop vs fp32; the manifest names it)")
    parser.add_argument("--calibration-data", metavar="DATASET",
                        help="int8 --primary: dataset whose TRAINING split calibrates the quantisation")
    parser.add_argument("--calibration-images", type=int, default=64, metavar="N",
                        help="int8 calibration images drawn from the training split (default 64)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_flag(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgeskd._folders import probe_writable
    from edgeskd._io import read_json_object
    from edgeskd._limits import check_range
    from edgeskd.errors import ExportError
    from edgeskd.export import export_bundle, load_parity_images

    check_range(args.max_accuracy_drop, "--max-accuracy-drop", low=0, high=1, error=ExportError)
    check_range(args.parity_images, "--parity-images", low=1, high=100_000, integer=True, error=ExportError)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise ExportError(f"{out} already exists; choose another --out or pass --overwrite")
    probe_writable(out.parent, "folder of --out")  # the bundle is built beside --out; find a read-only disk now
    images = load_parity_images(args.parity_data, max_images=args.parity_images) if args.parity_data else None
    latency = read_json_object(args.latency, ExportError, "--latency file") if args.latency else None
    calibration, source = None, "training split"
    if args.calibration_data:
        from edgeskd.data import load_dataset
        from edgeskd.models import load_checkpoint
        from edgeskd.search.deployment import calibration_set

        if args.calibration_images < 1:
            raise ExportError(f"--calibration-images must be >= 1; got {args.calibration_images}")
        splits = load_dataset(args.calibration_data)
        calibration = calibration_set(splits.train, load_checkpoint(args.checkpoint).preprocess,
                                      args.calibration_images, seed=0)
        source = f"training split of {args.calibration_data}"
    elif args.primary and args.primary.lower().endswith(":int8"):
        raise ExportError(f"--primary {args.primary} needs --calibration-data DATASET (its training split calibrates "
                          f"the quantisation)")
    report = export_bundle(args.checkpoint, args.out, formats=args.formats, parity_images=images, latency=latency,
                           int8=args.int8, max_accuracy_drop=args.max_accuracy_drop, overwrite=args.overwrite,
                           tensorrt_precision=args.tensorrt_precision, progress=not (args.no_progress or args.json),
                           primary=args.primary, calibration=calibration, calibration_source=source)
    if args.json:
        print_json(report.to_dict())
    else:
        print("\n".join(report.lines()))
    return 0
