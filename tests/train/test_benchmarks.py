"""The GPU throughput benchmark stays runnable: a tiny CPU run of each of its data paths
prints a RESULT line whose figures come from its own measurements."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_throughput.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_throughput", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_throughput", module)
    spec.loader.exec_module(module)
    return module


def _result(out: str) -> dict[str, str]:
    last = out.strip().splitlines()[-1]
    assert last.startswith("RESULT "), out
    return dict(field.split("=", 1) for field in last.split()[1:])


@pytest.mark.slow
@pytest.mark.parametrize(("workload", "precision"), [("digits_mlp", "fp32"), ("mnist_cnn", "bf16")])
def test_gpu_benchmark_runs_on_the_cpu_with_tiny_sizes(
    workload: str, precision: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _module()
    bench.main(
        [
            "--workload", workload, "--device", "cpu", "--precision", precision,
            "--k", "1", "3", "--steps", "2", "--warmup", "1", "--batch-size", "8",
            "--examples", "64", "--plain-trials", "1",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    fields = _result(out)
    assert fields["workload"] == workload
    assert fields["device"] == "cpu"
    assert fields["precision"] == precision
    assert fields["best_k"] in {"1", "3"}
    rates = [float(m) for m in re.findall(r"([0-9.]+) trial-steps/s", out)]
    assert len(rates) == (4 if precision == "bf16" else 3)  # plain (+ fp32 plain), K = 1, 3
    assert all(r > 0 for r in rates)
    assert float(fields["batched"]) == pytest.approx(max(rates[-2:]), abs=0.01)
    assert float(fields["speedup"]) == pytest.approx(
        float(fields["batched"]) / float(fields["plain"]), rel=0.02, abs=0.01
    )
    assert ("speedup_vs_fp32_plain" in fields) == (precision != "fp32")


def test_gpu_benchmark_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _module()
    with pytest.raises(SystemExit) as exc:
        bench.parse(["--k", "0"])
    assert exc.value.code == 2
    assert "--k" in capsys.readouterr().err
