"""How much slower a torch.optim class runs as a study-file plug-in than a built-in rule.

Dependency rule: torch and optcmp (a benchmark; run it directly:
`python benchmarks/plugin_slowdown.py`).

Trains digits_mlp for 400 steps with Adam, once as the built-in batched rule and once as
`torch.optim:Adam` through the plug-in path (one optimizer instance per trial), for
groups of K = 1 and K = 16 trials (the runner's default group size), on one CPU thread
(`deterministic_threads`), best of 3 wall-clock runs each. Forward and backward passes are
batched in both; only the optimizer step differs. The last line is
`RESULT ratio_k1=<a> ratio_k16=<b>` (plug-in time / built-in time).
"""

from __future__ import annotations

import time

import attrs
import torch

from optcmp import load_optimizer
from optcmp.runner import GroupTrials, deterministic_threads, train_group
from optcmp.spaces import SearchSpace
from optcmp.workloads import get_workload


def main() -> None:
    load_optimizer("torch_adam", torch.optim.Adam, source="torch.optim:Adam")
    workload = get_workload("digits_mlp")
    splits = workload.load(None)
    device = torch.device("cpu")
    ratios = {}
    for k in (1, 16):
        best = {}
        for name in ("adam", "torch_adam"):
            times = []
            for _ in range(3):
                with deterministic_threads(device):
                    started = time.perf_counter()
                    train_group(
                        workload,
                        splits,
                        GroupTrials([{"learning_rate": 1e-3}] * k, range(k), data_seed=0),
                        space=SearchSpace("benchmark", name, "constant"),
                        device=device,
                        spec=attrs.evolve(
                            workload.spec, step_budget=400, eval_interval=400, batch_size=64
                        ),
                    )
                    times.append(time.perf_counter() - started)
            best[name] = min(times)
        ratios[k] = best["torch_adam"] / best["adam"]
        print(
            f"K={k:2d}: built-in adam {best['adam']:.2f} s, torch.optim.Adam plug-in "
            f"{best['torch_adam']:.2f} s, {ratios[k]:.1f}x"
        )
    print(f"RESULT ratio_k1={ratios[1]:.2f} ratio_k16={ratios[16]:.2f}")


if __name__ == "__main__":
    main()
