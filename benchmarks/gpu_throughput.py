"""GPU throughput: trial-steps per second of one-at-a-time plain torch.optim loops and of
batched groups of K trials (`optcmp.runner.train_group`), at one precision.

Both sides train Momentum (torch.optim.SGD(momentum=0.9) one at a time, the batched
Momentum rule in a group; constant learning rates spread over [0.005, 0.05]) on the same
minibatch order, on the same device, at the same precision (bf16: autocast forward and
backward, float32 parameters and optimizer state), with the same process switches
(`group_settings`: cuDNN autotuning and TF32 on CUDA as the precision asks, one thread on
the CPU), channels-last image batches on CUDA on both sides. Only training steps are
timed (the device synchronised before each clock read): the plain loop over `--steps`
steps after `--warmup` untimed ones, the group by its own training clock
(`GroupResult.time`, evaluation excluded) after a warm-up group of `--warmup` steps.

Data: workloads that read files (cifar10_resnet32, ...) use `--data-dir` when given,
else synthetic data of the workload's shape (random standardized images, random labels;
throughput does not depend on the values); built-in workloads load their own data.

Prints, per configuration, trial-steps/s, the ratio to the one-at-a-time loop and the
peak device memory (CUDA; the process's peak resident memory on the CPU). With a
precision other than fp32 the plain loop is timed at fp32 too. Last line:
RESULT workload=<w> device=<d> precision=<p> plain=<trial-steps/s> best_k=<K>
batched=<trial-steps/s> speedup=<batched/plain> [speedup_vs_fp32_plain=<x>]

GPU (the issue's setting): python benchmarks/gpu_throughput.py --workload cifar10_resnet32 \
    --precision bf16 --k 1 8 32 64
CPU smoke run: python benchmarks/gpu_throughput.py --workload digits_cnn --device cpu \
    --k 1 4 --steps 5 --warmup 1
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Sequence

import attrs
import numpy as np
import numpy.typing as npt
import torch

from optcmp.runner import (
    GroupTrials,
    TrainOptions,
    autocast,
    data_order,
    group_settings,
    synchronize,
    train_group,
    wants_channels_last,
)
from optcmp.spaces import SearchSpace
from optcmp.study import COMPILE_MODES, PRECISIONS
from optcmp.workloads import WORKLOADS, Splits, Workload, get_workload, make_splits

DATA_SEED = 1234
# Image shape and classes of the file-reading workloads, for synthetic data.
SYNTHETIC: dict[str, tuple[tuple[int, ...], int]] = {
    "cifar10_resnet32": ((3, 32, 32), 10),
    "cifar10_vgg11": ((3, 32, 32), 10),
    "cifar100_cnn": ((3, 32, 32), 100),
    "mnist_cnn": ((1, 28, 28), 10),
    "fashion_mnist_cnn": ((1, 28, 28), 10),
}


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workload", default="cifar10_resnet32", choices=sorted(WORKLOADS))
    p.add_argument("--k", type=int, nargs="+", default=[1, 8, 32], help="group sizes")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--compile", default="none", choices=COMPILE_MODES, dest="compile_mode")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=None, help="default: the workload's")
    p.add_argument("--steps", type=int, default=50, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--plain-trials", type=int, default=2, help="trials timed one at a time")
    p.add_argument("--data-dir", default=None, help="real data for file workloads")
    p.add_argument("--examples", type=int, default=4096, help="synthetic training examples")
    args = p.parse_args(argv)
    if min(args.k) < 1 or args.steps < 1 or args.warmup < 0 or args.plain_trials < 1:
        p.error("--k, --steps and --plain-trials must be >= 1, --warmup >= 0")
    return args


def load(workload: Workload, args: argparse.Namespace, device: torch.device) -> Splits:
    name = workload.spec.name
    if not workload.spec.needs_data_dir or args.data_dir is not None:
        return workload.load(args.data_dir, device=device)
    if name not in SYNTHETIC:
        sys.exit(f"--workload {name}: no synthetic data of its shape; give --data-dir")
    shape, classes = SYNTHETIC[name]
    rng = np.random.default_rng(0)

    def part(n: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        x = rng.standard_normal((n, *shape), dtype=np.float32)
        return x, rng.integers(0, classes, n).astype(np.int64)

    n_eval = max(64, args.examples // 16)
    return make_splits(part(args.examples), part(n_eval), part(n_eval), device=device)


def learning_rates(k: int) -> list[float]:
    return list(np.geomspace(0.005, 0.05, k)) if k > 1 else [0.01]


def peak(device: torch.device) -> str:
    if device.type == "cuda":
        return f"peak {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return f"process peak RSS {rss:.2f} GiB"


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def plain_loop(
    workload: Workload,
    splits: Splits,
    batch: int,
    args: argparse.Namespace,
    device: torch.device,
    precision: str,
) -> float:
    """Trial-steps/s of `--plain-trials` trials trained one after another."""
    inputs, targets = splits.train.inputs, splits.train.targets
    last = wants_channels_last(device, inputs)
    seconds = 0.0
    with group_settings(device, precision):
        for trial, lr in enumerate(learning_rates(args.plain_trials)):
            model = workload.build_model(trial).to(device)
            if last:
                model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
            order = data_order(len(splits.train), batch, DATA_SEED, device=device)
            for step in range(args.warmup + args.steps):
                if step == args.warmup:
                    synchronize(device)
                    started = time.perf_counter()
                idx = next(order)
                x = inputs[idx]
                if last:
                    x = x.contiguous(memory_format=torch.channels_last)
                opt.zero_grad(set_to_none=True)
                with autocast(device, precision):
                    loss = workload.loss(model(x), targets[idx])
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
            synchronize(device)
            seconds += time.perf_counter() - started
    return float(args.plain_trials * args.steps / seconds)


def batched(
    workload: Workload,
    splits: Splits,
    batch: int,
    k: int,
    args: argparse.Namespace,
    device: torch.device,
) -> float:
    """Trial-steps/s of one group of K trials (training clock, evaluation excluded)."""
    lrs = learning_rates(k)

    def run(steps: int) -> float:
        result = train_group(
            workload,
            splits,
            GroupTrials(
                [{"learning_rate": lr, "momentum": 0.9} for lr in lrs],
                range(k),
                data_seed=DATA_SEED,
            ),
            space=SearchSpace("benchmark", "momentum", "constant"),
            device=device,
            spec=attrs.evolve(
                workload.spec, step_budget=steps, eval_interval=steps, batch_size=batch
            ),
            options=TrainOptions(precision=args.precision, compile_mode=args.compile_mode),
        )
        return float(result.time[-1])

    with group_settings(device, args.precision):
        if args.warmup:
            run(args.warmup)
        return float(k * args.steps / run(args.steps))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    device = torch.device(args.device)
    workload = get_workload(args.workload)
    splits = load(workload, args, device)
    batch = args.batch_size or workload.spec.batch_size
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"{args.workload}: batch {batch}, {args.steps} timed steps after {args.warmup} "
        f"warm-up, precision {args.precision}, compile {args.compile_mode}; device {name}, "
        f"torch {torch.__version__}"
    )
    reset_peak(device)
    plain = plain_loop(workload, splits, batch, args, device, args.precision)
    print(
        f"one at a time, plain torch.optim loop  {plain:9.2f} trial-steps/s  1.00x  {peak(device)}"
    )
    plain_fp32 = None
    if args.precision != "fp32":
        reset_peak(device)
        plain_fp32 = plain_loop(workload, splits, batch, args, device, "fp32")
        print(
            f"one at a time, plain loop at fp32       {plain_fp32:9.2f} trial-steps/s  "
            f"{plain_fp32 / plain:.2f}x  {peak(device)}"
        )
    best = (0.0, 0)
    for k in args.k:
        reset_peak(device)
        rate = batched(workload, splits, batch, k, args, device)
        print(
            f"train_group K = {k:<4d}                   {rate:9.2f} trial-steps/s  "
            f"{rate / plain:.2f}x  {peak(device)}"
        )
        best = max(best, (rate, k))
    line = (
        f"RESULT workload={args.workload} device={device.type} precision={args.precision} "
        f"plain={plain:.2f} best_k={best[1]} batched={best[0]:.2f} speedup={best[0] / plain:.2f}"
    )
    if plain_fp32 is not None:
        line += f" speedup_vs_fp32_plain={best[0] / plain_fp32:.2f}"
    print(line)


if __name__ == "__main__":
    main()
