"""Study files: which workloads, optimizers, search spaces and trials a study runs.

Dependency rule: standard library (tomllib), attrs, optcmp_data, and optcmp's spaces and
workload registry. The format is documented in docs/study-file.md.

`StudySpec.from_toml(path)` validates everything up front; every mistake is a ConfigError
naming the file, the key and the problem. Seeds are derived from the study seed with a
stable hash (`derive_seed`), never Python's salted `hash`, so every process and machine
draws the same trials.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from optcmp._plugins import discover, load_study_plugin
from optcmp.spaces import PRESETS, HParamRange, SearchSpace, preset
from optcmp.workloads import WORKLOADS, ArrayConfig, WorkloadSpec, get_workload, register_workload
from optcmp_data import (
    FAMILY_SPECS,
    ConfigError,
    ScheduleKind,
    closest_name,
    get_schedule,
    read_config_text,
)

__all__ = ["COMPILE_MODES", "DEVICES", "PRECISIONS", "StudySpec", "derive_seed"]

#: Accepted device spellings (`cuda:N` selects one GPU).
DEVICES: Final = ("cpu", "cuda")
#: Accepted `precision` values (first: the default); see optcmp.runner._device.
PRECISIONS: Final = ("fp32", "tf32", "bf16")
#: Accepted `compile` values (first: the default; "reduce-overhead" uses CUDA graphs).
COMPILE_MODES: Final = ("none", "default", "reduce-overhead", "max-autotune")

_TOP_KEYS: Final = (
    "name",
    "workloads",
    "optimizers",
    "trials",
    "seed",
    "space",
    "spaces",
    "step_budget",
    "eval_interval",
    "batch_size",
    "group_size",
    "group_timeout",
    "device",
    "devices",
    "precision",
    "compile",
    "data_dir",
    "plugins",
    "arrays",
)
_ARRAY_KEYS: Final = (
    "path",
    "task",
    "model",
    "widths",
    "blocks",
    "batch_size",
    "step_budget",
    "eval_interval",
)
_SPACE_KEYS: Final = ("preset", "name", "schedule")
_RANGE_KEYS: Final = ("low", "high", "scale")


def derive_seed(seed: int, *parts: str | int) -> int:
    """A seed in [0, 2**31) derived from `seed` and labels by SHA-256 (stable everywhere)."""
    text = "\x1f".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") >> 1


class _Where:
    """Formats ConfigError messages as 'FILE: key 'KEY': PROBLEM'."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: key {key!r}: {problem}")


def _check_keys(data: Mapping[str, Any], valid: tuple[str, ...], prefix: str, err: _Where) -> None:
    for key in data:
        if key not in valid:
            raise err(
                f"{prefix}{key}",
                f"unknown key{closest_name(key, valid)}; valid: {', '.join(valid)}",
            )


def _int(data: Mapping[str, Any], key: str, err: _Where, *, minimum: int) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise err(key, f"expected an integer, got {value!r}")
    if value < minimum:
        raise err(key, f"must be >= {minimum}, got {value}")
    return value


def _names(
    data: Mapping[str, Any], key: str, valid: tuple[str, ...], kind: str, err: _Where
) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        raise err(key, f"missing; list the {kind}s to run (valid: {', '.join(valid)})")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise err(key, f"expected a non-empty list of {kind} names")
    for v in value:
        if v not in valid:
            raise err(
                key, f"unknown {kind} {v!r}{closest_name(v, valid)}; valid: {', '.join(valid)}"
            )
    if len(set(value)) != len(value):
        raise err(key, f"lists a {kind} twice")
    return tuple(value)


def _plugins(data: Mapping[str, Any], err: _Where) -> tuple[tuple[str, str], ...]:
    table = data.get("plugins", {})
    if not isinstance(table, Mapping):
        raise err("plugins", 'expected a table NAME = "module:attribute"')
    out = []
    for name, target in table.items():
        if not isinstance(target, str) or ":" not in target:
            raise err(f"plugins.{name}", f'expected "module:attribute", got {target!r}')
        out.append((str(name), target))
    return tuple(out)


def _arrays(data: Mapping[str, Any], err: _Where, base_dir: Path | None) -> tuple[ArrayConfig, ...]:
    tables = data.get("arrays", {})
    if not isinstance(tables, Mapping):
        raise err("arrays", "expected tables [arrays.NAME]")
    out = []
    for name, table in tables.items():
        key = f"arrays.{name}"
        if not isinstance(table, Mapping):
            raise err(key, "expected a table")
        _check_keys(table, _ARRAY_KEYS, f"{key}.", err)
        for required in ("path", "task", "model"):
            if not isinstance(table.get(required), str) or not table[required]:
                raise err(f"{key}.{required}", "missing or not a string")
        path = Path(table["path"]).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = (base_dir / path).resolve()
        widths = table.get("widths", [128])
        if not isinstance(widths, list) or not all(
            isinstance(w, int) and not isinstance(w, bool) for w in widths
        ):
            raise err(f"{key}.widths", f"expected a list of integers, got {widths!r}")
        ints = {
            k: _int(table, k, _Where(f"{err.source}: {key}"), minimum=1) for k in _ARRAY_KEYS[4:]
        }
        try:
            out.append(
                ArrayConfig(
                    str(name),
                    path,
                    table["task"],
                    table["model"],
                    widths,
                    **{k: v for k, v in ints.items() if v is not None},
                )
            )
        except ConfigError as e:
            raise ConfigError(f"{err.source}: {e}") from None
    return tuple(out)


def _register_arrays(config: ArrayConfig, err: _Where) -> None:
    try:
        register_workload(config, source=f"arrays from {config.path}")
    except ConfigError as e:
        raise err(f"arrays.{config.name}", str(e)) from None


def _preset_name(value: Any, key: str, err: _Where) -> str:
    if not isinstance(value, str) or value not in PRESETS:
        raise err(
            key,
            f"unknown preset {value!r}{closest_name(str(value), PRESETS)}; "
            f"valid: {', '.join(PRESETS)}",
        )
    return value


def _parse_space(family: str, table: Mapping[str, Any], err: _Where) -> SearchSpace:
    """A user-declared space: an optional preset, then searched ranges and fixed values."""
    prefix = f"spaces.{family}."
    base_name = table.get("preset")
    if base_name is not None:
        base_name = _preset_name(base_name, f"{prefix}preset", err)
    base = preset(base_name, family) if base_name is not None else None
    schedule_raw = table.get("schedule", base.schedule.value if base else "constant")
    if not isinstance(schedule_raw, str):
        raise err(f"{prefix}schedule", f"expected a schedule name, got {schedule_raw!r}")
    try:
        schedule = get_schedule(schedule_raw).kind
    except ConfigError as e:
        raise err(f"{prefix}schedule", str(e)) from None
    names = SearchSpace("probe", family, schedule).names
    searched: dict[str, HParamRange] = {}
    fixed: dict[str, float] = {}
    if base is not None:
        searched = {r.name: r for r in base.searched if r.name in names}
        fixed = {k: v for k, v in base.fixed if k in names}
    overridden = False
    for key, value in table.items():
        if key in _SPACE_KEYS:
            continue
        overridden = True
        searched.pop(key, None)
        fixed.pop(key, None)
        if isinstance(value, Mapping):
            searched[key] = _parse_range(family, schedule, key, value, err)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            fixed[key] = float(value)
            try:
                SearchSpace("probe", family, schedule, (), {key: fixed[key]})
            except ConfigError as e:
                raise err(f"{prefix}{key}", str(e)) from None
        else:
            raise err(
                f"{prefix}{key}",
                "expected a fixed number or a table {low = ..., high = ..., scale = ...}",
            )
    name = table.get("name")
    if name is None:
        name = (
            base_name
            if base_name is not None and not overridden
            else (f"{base_name}+custom" if base_name else "custom")
        )
    if not isinstance(name, str) or not name:
        raise err(f"{prefix}name", "expected a non-empty string")
    # Keep the family's order of hyperparameters so spaces compare equal however written.
    order = {n: i for i, n in enumerate(names)}
    ranges = tuple(sorted(searched.values(), key=lambda r: order.get(r.name, len(order))))
    try:
        return SearchSpace(name, family, schedule, ranges, fixed)
    except ConfigError as e:
        raise err(f"spaces.{family}", str(e)) from None


def _parse_range(
    family: str, schedule: ScheduleKind, key: str, value: Mapping[str, Any], err: _Where
) -> HParamRange:
    """A searched range `{low = ..., high = ..., scale = ...}` of `spaces.FAMILY.KEY`."""
    where = f"spaces.{family}.{key}"
    _check_keys(value, _RANGE_KEYS, f"{where}.", err)
    missing = [k for k in _RANGE_KEYS if k not in value]
    if missing:
        raise err(where, f"a searched range needs {', '.join(missing)}")
    low, high = value["low"], value["high"]
    for bound_key, bound in (("low", low), ("high", high)):
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            raise err(f"{where}.{bound_key}", f"expected a number, got {bound!r}")
    if not isinstance(value["scale"], str):
        raise err(f"{where}.scale", f"expected a scale name, got {value['scale']!r}")
    try:
        searched = HParamRange(key, low, high, value["scale"])
        SearchSpace("probe", family, schedule, (searched,))
    except ConfigError as e:
        raise err(where, str(e)) from None
    return searched


@attrs.frozen
class StudySpec:
    """A validated study: workloads x optimizers x `trials` quasi-random trials."""

    workloads: tuple[str, ...]
    optimizers: tuple[str, ...]
    spaces: Mapping[str, SearchSpace]
    trials: int
    seed: int = 0
    name: str = "study"
    step_budget: int | None = None
    eval_interval: int | None = None
    batch_size: int | None = None
    group_size: int | None = None
    device: str = "cpu"
    data_dir: Path | None = None
    plugins: tuple[tuple[str, str], ...] = ()
    arrays: tuple[ArrayConfig, ...] = ()
    # Placement and speed settings (_run_settings): not part of the study's identity
    # except precision and compile, which change results by rounding.
    devices: tuple[str, ...] = ()
    precision: str = "fp32"
    compile: str = "none"
    #: Seconds one group may run before its worker is stopped (None: no limit); where
    #: and how long groups run, not part of the study's identity (docs/running.md).
    group_timeout: float | None = None
    source: str = attrs.field(default="<study>", eq=False)

    def load_plugins(self) -> None:
        """Register this study's plug-ins (and installed ones) in this process: workers
        call it before training, since a spawned process starts with built-ins only."""
        discover()
        for plugin_name, target in self.plugins:
            load_study_plugin(plugin_name, target, where=f"{self.source}: plug-in {plugin_name}")
        for config in self.arrays:
            _register_arrays(config, _Where(self.source))

    # --- construction --------------------------------------------------------------------

    @classmethod
    def from_toml(cls, path: str | Path) -> StudySpec:
        """Read and validate a study file (format: docs/study-file.md)."""
        path = Path(path)
        text = read_config_text(path, "study file")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
        return cls.from_mapping(
            data, source=str(path), base_dir=path.parent, default_name=path.stem
        )

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        source: str = "<study>",
        base_dir: Path | None = None,
        default_name: str = "study",
    ) -> StudySpec:
        """Validate a parsed study table; `base_dir` resolves a relative data_dir.

        Phases, in the order their mistakes are reported: keys, plug-ins and array
        workloads (registered here), names and counts, search spaces (`_spaces`), run
        settings, the data directory (`_data_dir`), then the intervals of each workload."""
        err = _Where(source)
        _check_keys(data, _TOP_KEYS, "", err)
        discover()
        plugins = _plugins(data, err)
        for plugin_name, target in plugins:
            load_study_plugin(plugin_name, target, where=f"{source}: key 'plugins.{plugin_name}'")
        arrays = _arrays(data, err, base_dir)
        for config in arrays:
            _register_arrays(config, err)
        workloads = _names(data, "workloads", tuple(WORKLOADS), "workload", err)
        optimizers = _names(data, "optimizers", tuple(FAMILY_SPECS), "optimizer", err)
        trials = _int(data, "trials", err, minimum=1)
        if trials is None:
            raise err("trials", "missing; how many trials per workload and optimizer")
        seed = _int(data, "seed", err, minimum=0)
        name = data.get("name", default_name)
        if not isinstance(name, str) or not name:
            raise err("name", "expected a non-empty string")

        spaces = _spaces(data, optimizers, err)
        device, devices, precision, compile_mode = _run_settings(data, err)
        data_dir = _data_dir(data, workloads, err, base_dir)
        spec = cls(
            workloads=workloads,
            optimizers=optimizers,
            spaces=spaces,
            trials=trials,
            seed=seed if seed is not None else 0,
            name=name,
            step_budget=_int(data, "step_budget", err, minimum=1),
            eval_interval=_int(data, "eval_interval", err, minimum=1),
            batch_size=_int(data, "batch_size", err, minimum=1),
            group_size=_int(data, "group_size", err, minimum=1),
            device=device,
            data_dir=data_dir,
            plugins=plugins,
            arrays=arrays,
            devices=devices,
            precision=precision,
            compile=compile_mode,
            group_timeout=_seconds(data, "group_timeout", err),
            source=source,
        )
        for w in workloads:
            ws = spec.workload_spec(w)
            if ws.eval_interval > ws.step_budget:
                raise err(
                    "eval_interval",
                    f"{ws.eval_interval} exceeds the step budget {ws.step_budget} of {w}",
                )
        return spec

    # --- queries ------------------------------------------------------------------------

    def workload_spec(self, workload: str) -> WorkloadSpec:
        """The workload's spec with this study's overrides of budget, interval and batch."""
        spec = get_workload(workload).spec
        return attrs.evolve(
            spec,
            step_budget=self.step_budget or spec.step_budget,
            eval_interval=self.eval_interval or spec.eval_interval,
            batch_size=self.batch_size or spec.batch_size,
        )

    def space(self, optimizer: str) -> SearchSpace:
        try:
            return self.spaces[optimizer]
        except KeyError:
            raise ConfigError(
                f"{self.source}: optimizer {optimizer!r} is not in this study"
                f"{closest_name(optimizer, self.optimizers)}"
            ) from None

    def space_seed(self, workload: str, optimizer: str) -> int:
        """Seed of the Halton sequence of one (workload, optimizer) cell."""
        return derive_seed(self.seed, "space", workload, optimizer)

    def trial_seed(self, workload: str, optimizer: str, trial: int) -> int:
        """Seed of one trial (model initialisation and data order)."""
        return derive_seed(self.seed, "trial", workload, optimizer, trial)

    def trial_hparams(
        self, workload: str, optimizer: str, *, start: int = 0, count: int | None = None
    ) -> list[dict[str, float]]:
        """Hyperparameters of trials start .. start+count-1 (default: up to `trials`)."""
        n = self.trials - start if count is None else count
        return self.space(optimizer).sample(
            n, seed=self.space_seed(workload, optimizer), start=start
        )

    def to_json(self) -> dict[str, Any]:
        """A canonical JSON form (equal for equal studies; used to detect changed specs)."""
        return {
            "name": self.name,
            "workloads": list(self.workloads),
            "optimizers": list(self.optimizers),
            "trials": self.trials,
            "seed": self.seed,
            "spaces": {k: self.spaces[k].to_json() for k in self.optimizers},
            "step_budget": self.step_budget,
            "eval_interval": self.eval_interval,
            "batch_size": self.batch_size,
            "group_size": self.group_size,
            "device": self.device,
            "data_dir": None if self.data_dir is None else str(self.data_dir),
            **({"plugins": dict(self.plugins)} if self.plugins else {}),
            **(
                {"arrays": {c.name: {**attrs.asdict(c), "path": str(c.path)} for c in self.arrays}}
                if self.arrays
                else {}
            ),
            # Only when not the default, so study directories of earlier versions resume.
            **({"precision": self.precision} if self.precision != PRECISIONS[0] else {}),
            **({"compile": self.compile} if self.compile != COMPILE_MODES[0] else {}),
        }

    def run_devices(self) -> tuple[str, ...]:
        """The devices groups are spread over: `devices`, else the one `device`."""
        return self.devices or (self.device,)


def _spaces(
    data: Mapping[str, Any], optimizers: tuple[str, ...], err: _Where
) -> dict[str, SearchSpace]:
    """Each optimizer's space: its [spaces.OPTIMIZER] table, else the preset `space`."""
    default_space = _preset_name(data.get("space", "choi2019"), "space", err)
    tables = data.get("spaces", {})
    if not isinstance(tables, Mapping):
        raise err("spaces", "expected tables [spaces.OPTIMIZER]")
    for opt, table in tables.items():
        if opt not in optimizers:
            raise err(
                f"spaces.{opt}",
                f"{opt!r} is not among optimizers {list(optimizers)}"
                f"{closest_name(opt, optimizers)}",
            )
        if not isinstance(table, Mapping):
            raise err(f"spaces.{opt}", "expected a table")
    spaces = {}
    for opt in optimizers:
        if opt in tables:
            spaces[opt] = _parse_space(opt, tables[opt], err)
            continue
        try:
            spaces[opt] = preset(default_space, opt)
        except ConfigError as e:
            raise err(f"spaces.{opt}", str(e)) from None
    return spaces


def _data_dir(
    data: Mapping[str, Any], workloads: tuple[str, ...], err: _Where, base_dir: Path | None
) -> Path | None:
    """`data_dir` (relative to `base_dir`), required when a workload reads files."""
    raw = data.get("data_dir")
    data_dir: Path | None = None
    if raw is not None:
        if not isinstance(raw, str) or not raw:
            raise err("data_dir", "expected a directory path string")
        data_dir = Path(raw).expanduser()
        if not data_dir.is_absolute() and base_dir is not None:
            data_dir = (base_dir / data_dir).resolve()
    needing = [w for w in workloads if WORKLOADS[w]().spec.needs_data_dir]
    if needing and data_dir is None:
        raise err("data_dir", f"missing; workloads {', '.join(needing)} read files from it")
    return data_dir


def _run_settings(data: Mapping[str, Any], err: _Where) -> tuple[str, tuple[str, ...], str, str]:
    """device (the kind of every entry when `devices` is given), devices, precision, compile."""
    device = data.get("device", "cpu")
    if not isinstance(device, str) or not _valid_device(device):
        raise err("device", f"expected 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    devices: tuple[str, ...] = ()
    raw = data.get("devices")
    if raw is not None:
        if "device" in data:
            raise err("devices", "give either 'device' or 'devices', not both")
        if (
            not isinstance(raw, list)
            or not raw
            or not all(isinstance(d, str) and _valid_device(d) for d in raw)
        ):
            raise err(
                "devices", f"expected a non-empty list like ['cuda:0', 'cuda:1'], got {raw!r}"
            )
        kinds = {d.partition(":")[0] for d in raw}
        if len(kinds) > 1:
            raise err("devices", f"mixes device kinds {sorted(kinds)}; use one kind")
        devices, device = tuple(raw), kinds.pop()
    settings = []
    for key, valid in (("precision", PRECISIONS), ("compile", COMPILE_MODES)):
        value = data.get(key, valid[0])
        if value not in valid:
            raise err(key, f"expected one of {', '.join(valid)}, got {value!r}")
        settings.append(value)
    return device, devices, settings[0], settings[1]


def _seconds(data: Mapping[str, Any], key: str, err: _Where) -> float | None:
    """A positive, finite number of seconds, or None when `key` is absent."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise err(key, f"expected a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds <= 0:
        raise err(key, f"must be a positive, finite number of seconds, got {value!r}")
    return seconds


def _valid_device(device: str) -> bool:
    kind, _, index = device.partition(":")
    return kind in DEVICES and (not index or (kind == "cuda" and index.isdigit()))
