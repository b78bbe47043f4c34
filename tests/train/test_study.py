"""Study files: parsing, overrides, seeds, and one clear ConfigError per mistake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from optcmp.spaces import preset
from optcmp.study import StudySpec, derive_seed
from optcmp_data import PAPER_FAMILIES, ConfigError, Scale

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "digits_quick.toml"

BASE = """
workloads = ["digits_mlp"]
optimizers = ["sgd", "adam"]
trials = 4
"""


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_study_file_parses() -> None:
    spec = StudySpec.from_toml(EXAMPLE)
    assert spec.name == "digits_quick"
    assert spec.workloads == ("digits_mlp",)
    assert spec.optimizers == tuple(PAPER_FAMILIES)
    assert spec.trials == 16
    assert spec.space("sgd") == preset("choi2019", "sgd")
    eps = {r.name: r for r in spec.space("adam").searched}["epsilon"]
    assert (eps.low, eps.high, eps.scale) == (1e-8, 1.0, Scale.LOG)
    assert spec.space("adam").name == "choi2019-narrow-eps"


def test_defaults_and_overrides(tmp_path: Path) -> None:
    spec = StudySpec.from_toml(write(tmp_path, BASE))
    assert (spec.seed, spec.device, spec.name) == (0, "cpu", "study")
    assert spec.space("adam") == preset("choi2019", "adam")
    default = spec.workload_spec("digits_mlp")
    over = StudySpec.from_toml(
        write(tmp_path, BASE + "step_budget = 60\neval_interval = 20\nbatch_size = 16\n")
    ).workload_spec("digits_mlp")
    assert (over.step_budget, over.eval_interval, over.batch_size) == (60, 20, 16)
    assert over.metric_name == default.metric_name


def test_user_spaces_start_from_a_preset_or_from_scratch(tmp_path: Path) -> None:
    text = (
        BASE
        + 'space = "lr-only"\n'
        + "[spaces.adam]\n"
        + 'schedule = "cosine_decay"\n'
        + 'learning_rate = { low = 1e-4, high = 0.1, scale = "log" }\n'
        + "decay_factor = 0.0\n"
        + "[spaces.sgd]\n"
        + 'preset = "choi2019"\n'
        + "decay_factor = 0.01\n"
    )
    spec = StudySpec.from_toml(write(tmp_path, text))
    adam = spec.space("adam")
    assert (adam.name, adam.schedule.value) == ("custom", "cosine_decay")
    assert [r.name for r in adam.searched] == ["learning_rate"]
    assert adam.fixed_values()["decay_factor"] == 0.0
    assert adam.fixed_values()["beta1"] == 0.9  # the family default
    sgd = spec.space("sgd")
    assert sgd.name == "choi2019+custom"
    assert [r.name for r in sgd.searched] == ["learning_rate", "decay_steps_fraction"]
    assert all(t["decay_factor"] == 0.01 for t in spec.trial_hparams("digits_mlp", "sgd"))


def test_changing_a_presets_schedule_drops_parameters_the_new_one_lacks(tmp_path: Path) -> None:
    text = BASE + '[spaces.sgd]\npreset = "choi2019"\nschedule = "constant"\n'
    space = StudySpec.from_toml(write(tmp_path, text)).space("sgd")
    assert space.names == ("learning_rate",)


def test_relative_data_dir_is_resolved_against_the_study_file(tmp_path: Path) -> None:
    text = 'workloads = ["mnist_cnn"]\noptimizers = ["sgd"]\ntrials = 1\ndata_dir = "data"\n'
    spec = StudySpec.from_toml(write(tmp_path, text))
    assert spec.data_dir == (tmp_path / "data").resolve()


def test_trials_extend_and_seeds_are_per_cell(tmp_path: Path) -> None:
    spec = StudySpec.from_toml(write(tmp_path, BASE + "seed = 5\n"))
    all_four = spec.trial_hparams("digits_mlp", "adam")
    assert len(all_four) == 4
    assert (
        spec.trial_hparams("digits_mlp", "adam", count=2)
        + spec.trial_hparams("digits_mlp", "adam", start=2)
        == all_four
    )
    seeds = {spec.trial_seed("digits_mlp", o, t) for o in spec.optimizers for t in range(4)}
    assert len(seeds) == 8
    assert spec.space_seed("digits_mlp", "adam") != spec.space_seed("digits_mlp", "sgd")
    other = StudySpec.from_toml(write(tmp_path, BASE + "seed = 6\n"))
    assert other.trial_hparams("digits_mlp", "adam") != all_four


def test_derived_seeds_do_not_depend_on_the_process() -> None:
    code = "from optcmp.study import derive_seed; print(derive_seed(3, 'trial', 'w', 'adam', 7))"
    # Another hash seed than this process's: Python's salted hash() would differ.
    env = {**os.environ, "PYTHONHASHSEED": str(1 + int(os.environ.get("PYTHONHASHSEED", "0")))}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert int(out.stdout) == derive_seed(3, "trial", "w", "adam", 7)
    assert 0 <= derive_seed(0) < 2**31
    assert derive_seed(0, "a", "bc") != derive_seed(0, "ab", "c")


def test_to_json_is_the_same_however_the_file_is_written(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write(
        tmp_path / "a",
        BASE + '[spaces.adam]\nbeta1 = 0.9\nlearning_rate = {scale="log", low=1e-4, high=1.0}\n',
    )
    b = write(
        tmp_path / "b",
        'trials = 4\noptimizers = ["sgd", "adam"]\nworkloads = ["digits_mlp"]\n'
        '[spaces.adam]\nlearning_rate = {low=1e-4, high=1.0, scale="log"}\nbeta1 = 0.9\n',
    )
    sa, sb = StudySpec.from_toml(a), StudySpec.from_toml(b)
    assert sa == sb
    assert sa.to_json() == sb.to_json()


MISTAKES = [
    (
        'workloads = ["digit_mlp"]\noptimizers = ["sgd"]\ntrials = 1',
        "workloads",
        "did you mean 'digits_mlp'",
    ),
    (
        'workloads = ["digits_mlp"]\noptimizers = ["adma"]\ntrials = 1',
        "optimizers",
        "did you mean 'adam'",
    ),
    ('workloads = ["digits_mlp"]\noptimizers = ["sgd"]\ntrials = 0', "trials", "must be >= 1"),
    ('workloads = ["digits_mlp"]\noptimizers = ["sgd"]', "trials", "missing"),
    ('optimizers = ["sgd"]\ntrials = 1', "workloads", "missing"),
    (BASE + "trails = 3", "trails", "did you mean 'trials'"),
    (BASE + 'space = "choi"', "space", "did you mean 'choi2019'"),
    (BASE + 'device = "gpu"', "device", "expected 'cpu', 'cuda' or 'cuda:N'"),
    (BASE + "seed = -1", "seed", "must be >= 0"),
    (BASE + "seed = 1.5", "seed", "expected an integer"),
    (BASE + "eval_interval = 500", "eval_interval", "exceeds the step budget 400"),
    (
        BASE + '[spaces.adam]\nlearning_rate = { low = 1.0, high = 0.1, scale = "log" }',
        "spaces.adam.learning_rate",
        "must be below high",
    ),
    (
        BASE + '[spaces.adam]\nepsilon = { low = 0.0, high = 1.0, scale = "log" }',
        "spaces.adam.epsilon",
        "log scale needs bounds > 0",
    ),
    (
        BASE + '[spaces.sgd]\nmomentum = { low = 0.0, high = 0.9, scale = "linear" }',
        "spaces.sgd.momentum",
        "sgd with schedule constant has no hyperparameter 'momentum'",
    ),
    (BASE + "[spaces.adam]\nbeta_1 = 0.9", "spaces.adam.beta_1", "did you mean 'beta1'"),
    (BASE + "[spaces.adam]\nbeta2 = 1.0", "spaces.adam.beta2", "outside its valid range"),
    (
        BASE + "[spaces.adam]\nbeta1 = { low = 0.0, high = 0.9 }",
        "spaces.adam.beta1",
        "needs scale",
    ),
    (
        BASE + '[spaces.adam]\nbeta1 = { low = 0.0, high = 0.9, scale = "lin" }',
        "spaces.adam.beta1",
        "did you mean 'linear'",
    ),
    (BASE + '[spaces.adam]\nbeta1 = "high"', "spaces.adam.beta1", "expected a fixed number"),
    (BASE + '[spaces.adam]\nschedule = "linear"', "spaces.adam.schedule", "unknown schedule"),
    (BASE + '[spaces.adam]\npreset = "wide"', "spaces.adam.preset", "unknown preset"),
    (BASE + "[spaces.nadam]\nbeta1 = 0.9", "spaces.nadam", "not among optimizers"),
    ('workloads = ["cifar10_vgg11"]\noptimizers = ["sgd"]\ntrials = 1', "data_dir", "missing"),
]


@pytest.mark.parametrize(("text", "key", "problem"), MISTAKES)
def test_every_mistake_names_the_file_the_key_and_the_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        StudySpec.from_toml(path)
    message = str(info.value)
    assert message.startswith(f"{path}: key {key!r}:"), message
    assert problem in message
    assert "\n" not in message


def test_unreadable_or_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read study file"):
        StudySpec.from_toml(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        StudySpec.from_toml(write(tmp_path, "trials = = 3"))
