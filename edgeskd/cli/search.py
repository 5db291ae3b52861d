"""`edgeskd search`: the best student under a latency budget measured on the target, as a deployable bundle.

With no --data/--teacher it runs the embedded demo: the 16 real chest X-ray samples, the EfficientNet-Lite0 ImageNet
teacher and the small demo space, finishing in minutes on 2 cores. Running the same command again resumes.
"""

from __future__ import annotations

import argparse
import sys

from edgeskd.cli._common import add_json_flag, print_json

DEMO_TRIALS = 6
DEFAULT_TRIALS = 20


def register(sub, name, help_text):
    p = sub.add_parser(name, help=help_text, description=help_text + ". Running the same command again resumes the "
                       "search (no finished trial is lost or repeated).")
    p.add_argument("--data", default=None, help="dataset: image folder, MedMNIST .npz, or a built-in name "
                   "(default: the 16-image demo set chest-xray-samples)")
    p.add_argument("--teacher", default=None, help="timm name of the teacher (default: tf_efficientnet_lite0, whose "
                   "ImageNet weights ship with edgeskd's dependencies)")
    p.add_argument("--teacher-weights",
                   help="teacher weight file (.safetensors/.pth/.pt), or 'hub' to download through timm "
                        "(online machines)")
    p.add_argument("--target", default="ort-cpu", help="latency target: ort-cpu, openvino-cpu, tensorrt, "
                   "remote://host:port or a profile")
    p.add_argument("--latency-ms", type=float, default=20.0, help="latency budget in milliseconds (hard gate; default 20)")
    p.add_argument("--statistic", default="p95", help="latency statistic the budget applies to (default p95)")
    p.add_argument("--trials", type=int, default=None, help=f"finished trials wanted in the whole study (default "
                   f"{DEFAULT_TRIALS}; {DEMO_TRIALS} for the demo); counts across workers and resumed runs")
    p.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    p.add_argument("--space", default=None, help="search space YAML file or shipped name (default: the teacher "
                   "family's space; 'demo' for the demo)")
    p.add_argument("--pareto", action="store_true", help="multi-objective: metric vs latency (no pruner)")
    p.add_argument("--metric", default="balanced_accuracy",
                   choices=["balanced_accuracy", "accuracy", "macro_f1", "auroc_macro"],
                   help="validation metric to maximise (default balanced_accuracy)")
    p.add_argument("--storage", default=None, help="study storage: postgresql://user:pass@host/db for many workers "
                   "or machines; sqlite:///FILE.db (one worker); default: a journal file in the run folder")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--study", default=None, help="study name (default: derived from teacher, data, target, budget); "
                   "workers on other machines join by this name")
    p.add_argument("--run-dir", default=None, help="run folder (default: runs/STUDY)")
    p.add_argument("--train-fraction", type=float, default=1.0, help="labelled share of the training split "
                   "(data-scarce mode; the rest is unlabelled)")
    p.add_argument("--runtimes", default="", help="deployment-aware search: comma-separated runtimes to search "
                   "(ort, openvino, tensorrt); replaces the space's deploy: runtimes")
    p.add_argument("--precisions", default="", help="deployment-aware search: comma-separated precisions to search "
                   "(fp32, bf16, fp16, int8); combinations this device does not support are dropped, with the reason")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stages", default=None, help=argparse.SUPPRESS)  # tests: "module:function" returning Stages
    add_json_flag(p)
    p.set_defaults(func=run)
    return p


def build_config(args: argparse.Namespace):
    from edgeskd.search.config import DEMO_DATA, DEMO_TEACHER, SearchConfig

    demo = args.data is None
    trials = args.trials
    if trials is None and args.timeout is None:
        trials = DEMO_TRIALS if demo else DEFAULT_TRIALS
    extra = {"stages": args.stages} if args.stages else {}
    config = SearchConfig(data=args.data or DEMO_DATA, teacher=args.teacher or DEMO_TEACHER,
                          teacher_weights=args.teacher_weights, target=args.target, latency_ms=args.latency_ms,
                          statistic=args.statistic, trials=trials, timeout=args.timeout, pareto=args.pareto,
                          workers=args.workers, seed=args.seed, train_fraction=args.train_fraction, metric=args.metric,
                          demo=demo, space=args.space or ("demo" if demo and args.teacher is None else ""),
                          study=args.study or "", run_dir=args.run_dir or "", runtimes=args.runtimes,
                          precisions=args.precisions, **extra)
    return config.resolve()


def run(args: argparse.Namespace) -> int:
    from edgeskd.search.driver import run_search
    from edgeskd.search.winner import DEMO_NOTE

    config = build_config(args)
    if config.demo:
        print(f"edgeskd search: {DEMO_NOTE}", file=sys.stderr)
    print(f"edgeskd search: study {config.study!r} in {config.run_dir}; budget {config.statistic} <= "
          f"{config.latency_ms:g} ms on {config.target}; space {config.space}", file=sys.stderr)
    summary = run_search(config, storage_url=args.storage)
    winner = summary["winner"]
    if args.json:
        print_json(summary)
    else:
        lat = winner["latency_ms"][config.statistic]
        deployed = winner.get("artifact")
        where = f" on {deployed['label']}" if deployed else ""
        print(f"winner: trial {winner['trial']}  val {config.metric} {winner['val_metric']:.4f}  "
              f"{config.statistic} {lat:.2f} ms{where} (budget {config.latency_ms:g} ms)")
        if deployed:
            print(f"deployed as {deployed['label']} ({deployed['runtime']} {deployed['precision']}): "
                  f"{deployed['split']} {config.metric} {deployed['metric']:.4f} through the artifact, "
                  f"PyTorch fp32 {deployed['pytorch_metric']:.4f} (drop {deployed['metric_drop']:+.4f})")
        note = (summary.get("validation") or {}).get("text")
        if note:
            print(f"note: {note}")
        print(f"trials: {summary['trained']} trained (what --trials counts), {summary['reused']} reused, "
              f"{summary['refused']} refused as over budget")
        print(f"bundle: {winner['bundle']}")
        print(f"report: {config.run_dir}/report.html")
        if config.demo:
            print(f"note: {DEMO_NOTE}")
    return 0
