"""The floor under ``simulate.py --resume``'s first result: how soon Tune gets a first report when
``--trials`` trials start at once on the simulated cluster (``simulate.simulated_cluster``), with no
restore and nothing else to do.

    python benchmarks/actor_storm.py                    # 8 nodes x 8 logical GPUs, 64 trials at once

A resumed 2,000-trial simulated sweep restarts the 64 trials that were running, all at once; here each
trial is a Tune function trial that imports what a simulated mmkd trial imports (``mmkd.sweep.simulate``)
and reports once, at once. Prints one JSON line: seconds from ``fit()`` to the first report and to the
last, the driver's CPU seconds, and the cores the machine has.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Any

from driver import DriverTimer
from simulate import simulated_cluster


class FirstReports(DriverTimer):
    """DriverTimer plus the fit()-relative time of each report."""

    def __init__(self) -> None:
        super().__init__()
        self.at: list[float] = []

    def on_trial_result(self, **info: Any) -> None:
        self.at.append(time.perf_counter() - self._wall0)
        super().on_trial_result(**info)


def report_once(config: dict[str, Any]) -> None:
    from ray import tune

    import mmkd.sweep.simulate  # noqa: F401  (what a simulated trial's actor imports)

    tune.report({"step": 1, "x": config["x"]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--gpus-per-node", type=int, default=8)
    args = ap.parse_args()
    import ray
    from ray import tune

    cluster = simulated_cluster(args.nodes, args.gpus_per_node)
    timer = FirstReports()
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        tuner = tune.Tuner(
            tune.with_resources(report_once, {"cpu": 1, "gpu": 1}),
            param_space={"x": tune.grid_search(list(range(args.trials)))},
            run_config=tune.RunConfig(
                storage_path=tempfile.mkdtemp(prefix="mmkd-storm-"), callbacks=[timer], verbose=0
            ),
        )
        tuner.fit()
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(
        json.dumps(
            {
                "trials_at_once": args.trials,
                "gpus": args.nodes * args.gpus_per_node,
                "cores": os.cpu_count(),
                "first_report_s": min(timer.at),
                "last_report_s": max(timer.at),
                "reports": len(timer.at),
                "driver_cpu_s": timer.cpu_s,
            }
        )
    )


if __name__ == "__main__":
    main()
