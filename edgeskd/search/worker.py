"""A local search worker process: `python -m edgeskd.search.worker RUN_DIR` (started by `edgeskd search --workers K`).

It reads the run folder's config.json, takes the storage URL from the environment (so no password is ever written to
disk or shown in `ps`), joins the study and runs trials until the study-wide trial count or the deadline is reached.
Its device (and the device lock it trains under) comes from the driver's environment: see edgeskd.search.devices.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from edgeskd._json import read_json
    from edgeskd.errors import EdgeskdError, SearchError
    from edgeskd.search.config import CONFIG_NAME, SearchConfig
    from edgeskd.search.driver import (DEADLINE_ENV, STORAGE_ENV, WORKER_ENV, StopAfter, open_study)
    from edgeskd.search.latency_map import load_map
    from edgeskd.search.objective import SearchContext, make_objective
    from edgeskd.search.storage import mask_url, open_storage, resolve_storage

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m edgeskd.search.worker RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    worker = int(os.environ.get(WORKER_ENV, "1"))
    try:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        config = SearchConfig.from_dict(read_json(run_dir / CONFIG_NAME, SearchError, "search config"))
        info = resolve_storage(os.environ.get(STORAGE_ENV), run_dir, config.workers)
        from edgeskd.search.devices import DEVICE_ENV, LOCK_ENV, on_device
        from edgeskd.search.stages import load_stages

        # the driver pinned this process to one device (CUDA_VISIBLE_DEVICES) and named its lock
        stages = on_device(load_stages(config.stages), os.environ.get(DEVICE_ENV, config.device),
                           os.environ.get(LOCK_ENV))
        ctx = SearchContext.load(config, stages)
        study = open_study(config, open_storage(info), ctx.space.pruner, worker=worker, sampler=ctx.space.sampler)
        ctx.latency_map = load_map(ctx, study)
        deadline = os.environ.get(DEADLINE_ENV)
        timeout = max(0.0, float(deadline) - time.time()) if deadline else None
        study.optimize(make_objective(ctx), timeout=timeout, callbacks=[StopAfter(config.trials)],
                       catch=(EdgeskdError,), gc_after_trial=False)
    except EdgeskdError as exc:
        print(f"edgeskd search worker {worker}: error: {mask_url(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
