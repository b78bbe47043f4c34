"""optcmp.optim: the registered update rules (the paper's six, AdamW, NAdamW, plug-ins),
batched over trials, with schedules.

Dependency rule: torch and optcmp_data only; never optcmp_analysis or optcmp_cli.

The rules follow method.md Table 1 exactly (not torch.optim's variants). Each rule works on
parameter tensors with a leading trial axis K and per-trial hyperparameter tensors [K]:

    rule = get_rule("adam")
    hp = batch_hparams("adam", trials)                  # [K] tensors, defaults filled
    state = rule.init(params)                           # params: list of [K, *shape]
    lr = scheduled_lr(Schedule.LINEAR_DECAY, hp["learning_rate"], step, budget, hp_sched)
    rule.apply_(params, grads, state, hp, lr, step)     # in place; or rule.update (pure)

For ordinary single-model training use the torch.optim wrappers (PaperAdam, ...).
`check_inclusion` checks an inclusion of the taxonomy (`optcmp_data.default_taxonomy()`)
numerically. A rule is reached by its family's name (`get_rule`, `RULES`), not its class.
"""

from optcmp.optim._check import InclusionCheck, check_inclusion, find_relation
from optcmp.optim._registry import RULES, BatchedRule, get_rule, register_rule
from optcmp.optim._rules import Rule, State
from optcmp.optim._schedules import Schedule, scheduled_lr, validate_schedule
from optcmp.optim._torch_adapter import TorchOptimizerRule
from optcmp.optim._torch_optim import (
    PaperAdam,
    PaperAdamW,
    PaperMomentum,
    PaperNAdam,
    PaperNAdamW,
    PaperNesterov,
    PaperOptimizer,
    PaperRMSProp,
    PaperSGD,
)
from optcmp.optim._validation import batch_hparams, validate_hparams

__all__ = [
    "RULES",
    "BatchedRule",
    "InclusionCheck",
    "PaperAdam",
    "PaperAdamW",
    "PaperMomentum",
    "PaperNAdam",
    "PaperNAdamW",
    "PaperNesterov",
    "PaperOptimizer",
    "PaperRMSProp",
    "PaperSGD",
    "Rule",
    "Schedule",
    "State",
    "TorchOptimizerRule",
    "batch_hparams",
    "check_inclusion",
    "find_relation",
    "get_rule",
    "register_rule",
    "scheduled_lr",
    "validate_hparams",
    "validate_schedule",
]
