"""`edgeskd select`: dual weight selection, teacher weights -> model A and model B initial weights + a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeskd.cli._common import add_json_flag, add_teacher_num_classes, print_json

EPILOG = """strategies: "<element>[:k=v,...]+<layer>", a bare element name means "+first".
  element (which channels along every reduced dimension, one index set per channel space):
    uniform[:offset=K]     evenly spaced; offset 0 is the reference method (arange(S) * T//S, or rounded linspace
                           when T is not divisible by S); offset K shifts the picks (offset 1 = disjoint from 0)
    consecutive[:offset=K] a contiguous run starting at K
    random[:seed=N]        a seeded random subset per channel space
    magnitude[:largest=1]  the channels with the largest L1 weight magnitude in the teacher
  layer (which teacher blocks feed the student's blocks, per stage):
    first                  the first N blocks (the reference method)
    even                   blocks spread evenly over the stage's depth
examples:
  edgeskd select --teacher tf_efficientnet_lite0 --depth 0.5 --width 0.5 --resolution 64 --out sel/
  edgeskd select --teacher vit_base_patch16_224 --teacher-weights vitb.safetensors \\
                 --student vit_tiny_patch16_224 --strategy-a uniform+first --strategy-b magnitude+even --out sel/
writes OUT/model_a.safetensors, OUT/model_b.safetensors (every student tensor except the classifier) and
OUT/selection.json (tensor mapping, kept fraction, indices per channel space, A/B overlap)."""


def register(sub, name, help_text):
    parser = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="timm name of the teacher architecture")
    parser.add_argument("--teacher-weights", help="teacher weights (.safetensors/.pth/.pt), or 'hub' to download "
                                                  "through timm (online machines); optional for teachers whose weights "
                                                  "ship with a package (tf_efficientnet_lite0)")
    add_teacher_num_classes(parser)
    student = parser.add_mutually_exclusive_group()
    student.add_argument("--student", help="timm name of the student (same family), e.g. vit_tiny_patch16_224")
    student.add_argument("--student-config", help="JSON StudentSpec file (teacher, depth, width, resolution, ...)")
    parser.add_argument("--depth", type=float, help="student depth multiplier in (0, 1] (default 0.5)")
    parser.add_argument("--width", type=float, help="student width multiplier in (0, 1] (default 0.5)")
    parser.add_argument("--resolution", type=int, help="student input resolution (default 224)")
    parser.add_argument("--num-classes", type=int, default=None, help="student classes (the head is not selected)")
    parser.add_argument("--strategy-a", default="uniform+first", help="model A's strategy (default uniform+first)")
    parser.add_argument("--strategy-b", default="uniform:offset=1+even",
                        help="model B's strategy (default uniform:offset=1+even)")
    parser.add_argument("--out", required=True, help="output folder (refused when it holds files, unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace the selection already in --out")
    add_json_flag(parser)
    parser.set_defaults(func=run)
    return parser


def _student(args: argparse.Namespace, teacher):
    from edgeskd.errors import SelectionError
    from edgeskd.models import StudentSpec, build_student, create_model

    multipliers = {k: getattr(args, k) for k in ("depth", "width", "resolution") if getattr(args, k) is not None}
    if args.student:
        if {"depth", "width"} & set(multipliers):
            raise SelectionError("--depth/--width describe a student built from the teacher; they cannot be combined "
                                 "with --student NAME")
        kwargs = {"img_size": multipliers["resolution"]} if "resolution" in multipliers else {}
        if args.num_classes is not None:
            kwargs["num_classes"] = args.num_classes
        return create_model(args.student, **kwargs), {"name": args.student, **kwargs}
    if args.student_config:
        spec = StudentSpec.from_json(args.student_config)
        if spec.teacher != args.teacher:
            raise SelectionError(f"{args.student_config}: its teacher is {spec.teacher!r}, but --teacher is "
                                 f"{args.teacher!r}")
        if multipliers or args.num_classes is not None:
            data = {**spec.to_dict(), **multipliers}
            if args.num_classes is not None:
                data["num_classes"] = args.num_classes
            spec = StudentSpec.from_dict(data)
    else:
        data = {"teacher": args.teacher, "depth": 0.5, "width": 0.5, **multipliers}
        if args.num_classes is not None:
            data["num_classes"] = args.num_classes
        spec = StudentSpec.from_dict(data)
    return build_student(spec, teacher), {"spec": spec.to_dict()}


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from edgeskd.models import load_teacher
    from edgeskd.selection import parse_strategy, save_dual_selection, select_dual

    from edgeskd._folders import check_output_folder, publish_folder

    strategies = (str(parse_strategy(args.strategy_a)), str(parse_strategy(args.strategy_b)))  # fail fast
    check_output_folder(args.out, overwrite=args.overwrite)  # before the teacher loads: refuse or probe now
    with tqdm(total=4, desc="select", unit="step", disable=True if args.json else None, leave=False) as bar:
        teacher = load_teacher(args.teacher, args.teacher_weights, teacher_num_classes=args.teacher_num_classes)
        bar.update()
        student, student_info = _student(args, teacher)
        bar.update()
        dual = select_dual(teacher, student, *strategies)
        bar.update()
        info = {"teacher": args.teacher, "teacher_weights": args.teacher_weights,
                "teacher_num_classes": int(getattr(teacher, "num_classes", -1)), "student": student_info}
        with publish_folder(args.out, overwrite=args.overwrite) as building:  # all three files or none
            built = save_dual_selection(building, dual, info)
        paths = {k: Path(args.out) / v.name for k, v in built.items()}
        bar.update()
    a, overlap = dual.a.report, dual.report["overlap"]
    summary = {"out": str(args.out), "files": {k: str(v) for k, v in paths.items()}, "family": a["family"],
               "strategy_a": strategies[0], "strategy_b": strategies[1], "kept_fraction": a["kept_fraction"],
               "kept_parameters": a["kept_parameters"], "teacher_parameters": a["teacher_parameters"],
               "overlap_parameters": overlap["parameters"], "overlap_channels": overlap["channels"],
               "classifier_left": a["classifier_left"], "student": student_info,
               "teacher_num_classes": info["teacher_num_classes"]}
    if args.json:
        print_json(summary)
        return 0
    print(f"{a['family']} teacher {args.teacher}: student keeps {a['kept_parameters']:,} of "
          f"{a['teacher_parameters']:,} backbone parameters ({a['kept_fraction']:.1%})")
    print(f"model A  {strategies[0]:<28} -> {paths['a']}")
    print(f"model B  {strategies[1]:<28} -> {paths['b']}")
    print(f"A/B overlap: {overlap['parameters']:.1%} of parameters from the same teacher weight, "
          f"{overlap['channels']:.1%} of channels")
    print(f"classifier left to the new task: {', '.join(a['classifier_left']) or '-'}; report: {paths['report']}")
    return 0
