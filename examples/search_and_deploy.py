"""Search the best student under a measured latency budget, then use the bundle it exported with ONNX Runtime.

    .venv/bin/python examples/search_and_deploy.py      # a few minutes on 2 cores (demo data, demo space)

Run it twice: the second run resumes the finished study (no trial is repeated) and re-checks the winner.
"""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgeskd.data import load_dataset, preprocess_batch
from edgeskd.data.preprocess import PreprocessSpec
from edgeskd.search import SearchConfig, run_search

summary = run_search(SearchConfig(data="chest-xray-samples", teacher="tf_efficientnet_lite0", target="ort-cpu",
                                  latency_ms=20, trials=4, space="demo",
                                  study="example", run_dir=str(Path("runs/example-search").resolve())))
winner = summary["winner"]
print(f"winner: trial {winner['trial']}, p95 {winner['latency_ms']['p95']:.2f} ms, bundle {winner['bundle']}")

# Deploy: the bundle's manifest says how to preprocess; the ONNX file does the rest.
bundle = Path(winner["bundle"])
manifest = json.loads((bundle / "manifest.json").read_text())
spec = PreprocessSpec.from_dict(manifest["preprocess"])
session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
test = load_dataset("chest-xray-samples", seed=0).test
logits = session.run(None, {"input": preprocess_batch(list(test.images), spec).numpy()})[0]
for label, probs in zip(test.labels, np.exp(logits) / np.exp(logits).sum(1, keepdims=True)):
    print(f"true {manifest['labels'][label]:10s} predicted {manifest['labels'][int(probs.argmax())]:10s} "
          f"p={probs.max():.2f}")
