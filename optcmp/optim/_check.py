"""Checking a declared inclusion numerically: does the general rule, with hyperparameters
mapped through the declared limit, reproduce the special rule's trajectory?

Dependency rule: torch, optcmp_data and optcmp's optim / workloads packages.

    result = check_inclusion(relation)                  # a random problem, 200 steps
    result = check_inclusion(relation, workload="digits_mlp", steps=50)

Both rules train the same model from the same initialisation on the same minibatches, in
float64, one trial each (K = 1): the special rule with its family defaults (learning rate
0.05 on the random problem, its family default on a workload) under a linear-decay
schedule (constant where the map holds for constant schedules only), the general rule with
`general_hparams` / `general_lr` of the map. The result is the largest relative deviation
||theta_general - theta_special|| / ||theta_special|| over steps and parameter tensors,
and pass/fail against a tolerance (default: 1e-10 for exact maps, 1e-4 for limits, whose
large finite value leaves a small gap by design). `optcmp optimizers check-inclusion` and
tests/train/test_optim_inclusions.py both run this.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import torch
from torch import Tensor, nn

from optcmp.optim._inclusion import general_hparams, general_lr
from optcmp.optim._registry import get_rule
from optcmp.optim._schedules import Schedule, scheduled_lr
from optcmp_data import ConfigError, Inclusion, Taxonomy, get_family

__all__ = ["InclusionCheck", "check_inclusion", "find_relation"]

#: Default tolerances on the relative deviation: exact maps, and limits.
EXACT_TOL = 1e-10
LIMIT_TOL = 1e-4


@attrs.frozen
class InclusionCheck:
    """The outcome of one check (see the module docstring)."""

    special: str
    general: str
    problem: str
    steps: int
    schedule: str
    max_deviation: float
    worst_step: int
    moved: float
    tol: float
    map: str

    @property
    def passed(self) -> bool:
        """Within tolerance, and the special rule really moved the parameters."""
        return self.max_deviation <= self.tol and self.moved > 0.0

    def to_json(self) -> dict[str, object]:
        return {**attrs.asdict(self), "passed": self.passed}


def find_relation(special: str, general: str, taxonomy: Taxonomy) -> Inclusion:
    """The directly declared relation special ⊆ general with a hyperparameter map."""
    for relation in taxonomy.relations:
        if (relation.special, relation.general) == (special, general):
            if relation.hparam_map is None:
                raise ConfigError(
                    f"inclusion {special} ⊆ {general} is declared without a hyperparameter "
                    "map; nothing to check"
                )
            return relation
    how = "follows from a chain of" if taxonomy.includes(general, special) else "is not among"
    raise ConfigError(
        f"inclusion {special} ⊆ {general} {how} the declared relations; check each direct "
        "relation on its own"
    )


Problem = tuple[
    list[Tensor],  # initial parameters, each [1, *shape]
    Callable[[list[Tensor], int], list[Tensor]],  # gradients at step t
]


def _random_problem() -> Problem:
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(96, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (96,), generator=gen)
    order = torch.randperm(96, generator=gen)
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3)).double()
    params0 = [p.detach().clone().unsqueeze(0) for p in net.parameters()]

    def grads(params: list[Tensor], t: int) -> list[Tensor]:
        w1, b1, w2, b2 = (p[0].detach().requires_grad_(True) for p in params)
        idx = order[(t * 16) % 96 : (t * 16) % 96 + 16]
        out = torch.tanh(x[idx] @ w1.T + b1) @ w2.T + b2
        loss = nn.functional.cross_entropy(out, y[idx])
        return [g.unsqueeze(0) for g in torch.autograd.grad(loss, [w1, b1, w2, b2])]

    return params0, grads


def _workload_problem(name: str) -> Problem:
    from optcmp.workloads import get_workload

    workload = get_workload(name)
    if workload.spec.needs_data_dir:
        raise ConfigError(f"workload {name} reads files; check inclusions on one without")
    splits = workload.load(None)
    model = workload.build_model(0).double()
    names = [n for n, _ in model.named_parameters()]
    params0 = [p.detach().clone().unsqueeze(0) for p in model.parameters()]
    x_all = splits.train.inputs.double() if splits.train.inputs.is_floating_point() else None
    inputs = x_all if x_all is not None else splits.train.inputs
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(splits.train), generator=gen)
    batch = min(workload.spec.batch_size, len(splits.train))
    buffers = {n: b for n, b in model.named_buffers()}

    def grads(params: list[Tensor], t: int) -> list[Tensor]:
        leaves = [p[0].detach().requires_grad_(True) for p in params]
        start = (t * batch) % max(1, len(order) - batch + 1)
        idx = order[start : start + batch]
        out = torch.func.functional_call(
            model, ({**dict(zip(names, leaves, strict=True)), **buffers},), (inputs[idx],)
        )
        loss = workload.loss(out.double(), splits.train.targets[idx])
        return [g.unsqueeze(0) for g in torch.autograd.grad(loss, leaves)]

    return params0, grads


def check_inclusion(
    relation: Inclusion,
    *,
    steps: int = 200,
    workload: str | None = None,
    tol: float | None = None,
) -> InclusionCheck:
    """Run both rules and compare their trajectories (see the module docstring)."""
    hmap = relation.hparam_map
    if hmap is None:
        raise ConfigError(
            f"inclusion {relation.special} ⊆ {relation.general}: no hyperparameter map declared"
        )
    if steps < 1:
        raise ConfigError(f"check-inclusion: --steps {steps} must be >= 1")
    special_family = get_family(relation.special)
    get_family(relation.general)
    special_rule, general_rule = get_rule(relation.special), get_rule(relation.general)
    params0, grads_at = _random_problem() if workload is None else _workload_problem(workload)

    values = special_family.defaults()
    if workload is None:
        values["learning_rate"] = 0.05
    f64 = torch.float64
    special = {k: torch.tensor([v], dtype=f64) for k, v in values.items()}
    kind = Schedule.CONSTANT if hmap.constant_schedule_only else Schedule.LINEAR_DECAY
    sched = {
        "decay_factor": torch.tensor([0.1], dtype=f64),
        "decay_steps_fraction": torch.tensor([0.8], dtype=f64),
    }
    general = general_hparams(relation, special)
    try:
        get_family(relation.general).validate({k: float(v.item()) for k, v in general.items()})
    except ConfigError as err:
        raise ConfigError(
            f"inclusion {relation.special} ⊆ {relation.general}: the map gives invalid "
            f"values: {err}"
        ) from None

    a = [p.clone() for p in params0]
    b = [p.clone() for p in params0]
    state_a, state_b = special_rule.init(a), general_rule.init(b)
    worst, worst_step = 0.0, 0
    for t in range(steps):
        lr_a = scheduled_lr(kind, special["learning_rate"], t, steps, sched)
        lr_b = general_lr(relation, general, lr_a, t)
        special_rule.apply_(a, grads_at(a, t), state_a, special, lr_a, t)
        general_rule.apply_(b, grads_at(b, t), state_b, general, lr_b, t)
        for pa, pb in zip(a, b, strict=True):
            norm = pa.norm().item()
            rel = (pa - pb).norm().item() / norm if norm > 0 else (pa - pb).norm().item()
            if not math.isfinite(rel):
                rel = math.inf
            if rel > worst:
                worst, worst_step = rel, t
    moved = max((pa - p0).norm().item() for pa, p0 in zip(a, params0, strict=True))
    return InclusionCheck(
        special=relation.special,
        general=relation.general,
        problem=workload or "random MLP 6-12-3 (float64)",
        steps=steps,
        schedule=kind.value,
        max_deviation=worst,
        worst_step=worst_step,
        moved=moved,
        tol=tol if tol is not None else (EXACT_TOL if hmap.exact else LIMIT_TOL),
        map=hmap.describe(),
    )
