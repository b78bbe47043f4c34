"""The workload contract, checked for every registered workload (tiny files where needed),
and the readers of each data format."""

from __future__ import annotations

import gzip
import math
import pickle
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

from optcmp.workloads import (
    WORKLOADS,
    Splits,
    Workload,
    get_workload,
    read_cifar_batch,
    read_idx,
    read_text,
)
from optcmp.workloads._builtin import NoisyQuadratic
from optcmp.workloads._files import VOCAB, encode_text
from optcmp_data import ConfigError, DataFormatError, Direction

NAMES = sorted(WORKLOADS)


# --- tiny files in every format, written from the formats' specifications --------------

IDX_TYPE = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}

TEXT = (
    "Well, Prince, so Genoa and Lucca are now just family estates of the Buonapartes. "
    "Но предупреждаю вас — ça ne sera pas long. "
)


def idx_bytes(array: npt.NDArray[np.generic]) -> bytes:
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    header = bytes([0, 0, IDX_TYPE[np.dtype(dtype)], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def write_idx(path: Path, array: npt.NDArray[np.generic], *, gz: bool) -> Path:
    raw = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def write_mnist(directory: Path, *, gz: bool, n_train: int = 36, n_test: int = 8) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        write_idx(directory / f"{prefix}-images-idx3-ubyte", images, gz=gz)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", labels, gz=gz)


def cifar_batch(n: int, n_classes: int, label_key: bytes, seed: int) -> dict[bytes, object]:
    rng = np.random.default_rng(seed)
    batch: dict[bytes, object] = {
        b"batch_label": b"testing batch",
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        label_key: [int(v) for v in rng.integers(0, n_classes, n)],
        b"filenames": [f"img{i}.png".encode() for i in range(n)],
    }
    if label_key == b"fine_labels":
        batch[b"coarse_labels"] = [int(v) for v in rng.integers(0, 20, n)]
    return batch


def write_pickle(path: Path, obj: object) -> None:
    # Protocol 2 is what the published (Python 2) CIFAR files use.
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar10(directory: Path, *, per_batch: int = 6) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        write_pickle(directory / f"data_batch_{i}", cifar_batch(per_batch, 10, b"labels", i))
    write_pickle(directory / "test_batch", cifar_batch(per_batch, 10, b"labels", 9))


def write_cifar100(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_pickle(directory / "train", cifar_batch(30, 100, b"fine_labels", 1))
    write_pickle(directory / "test", cifar_batch(6, 100, b"fine_labels", 2))


def write_text(directory: Path, *, repeats: int = 12) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "book.txt").write_text(TEXT * repeats, encoding="utf-8")


def write_all(root: Path) -> Path:
    """A data directory with every dataset the file-backed workloads read."""
    write_mnist(root / "mnist", gz=True)
    write_mnist(root / "fashion_mnist", gz=False)
    write_cifar10(root / "cifar-10-batches-py")
    write_cifar100(root / "cifar-100-python")
    write_text(root / "text")
    return root


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root: Path = tmp_path_factory.mktemp("data")
    return write_all(root)


@pytest.fixture(scope="module")
def loaded(data_dir: Path) -> dict[str, Splits]:
    return {name: get_workload(name).load(data_dir) for name in NAMES}


def _batch(splits: Splits, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = splits.train.inputs[:n], splits.train.targets[:n]
    if not x.is_floating_point():  # token windows: a short prefix keeps the LSTM test fast
        x, y = x[:, :12], y[:, :12]
    return x, y


# --- the shared contract -------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_spec_is_sane(name: str) -> None:
    workload = get_workload(name)
    spec = workload.spec
    assert spec.name == name
    assert spec.description
    assert spec.metric_name
    assert isinstance(spec.direction, Direction)
    assert 1 <= spec.eval_interval <= spec.step_budget
    assert spec.batch_size >= 1
    assert spec.eval_batch_size >= 1
    assert math.isfinite(spec.valid_target)
    assert math.isfinite(spec.test_target)
    info = spec.info(step_budget=7)
    assert (info.name, info.metric_name, info.step_budget) == (name, spec.metric_name, 7)
    if spec.needs_data_dir:
        with pytest.raises(ConfigError, match=name):
            workload.load(None)


@pytest.mark.parametrize("name", NAMES)
def test_loading_is_deterministic_and_splits_are_consistent(
    name: str, data_dir: Path, loaded: dict[str, Splits]
) -> None:
    splits = loaded[name]
    again = get_workload(name).load(data_dir)
    for part in ("train", "train_eval", "valid", "test"):
        a, b = getattr(splits, part), getattr(again, part)
        assert len(a) >= 1
        assert torch.equal(a.inputs, b.inputs)
        assert torch.equal(a.targets, b.targets)
        assert a.inputs.shape[1:] == splits.train.inputs.shape[1:]
    # train_eval is a subset of the training split.
    flat_train = {tuple(row.tolist()) for row in splits.train.inputs.flatten(1)}
    assert all(tuple(row.tolist()) in flat_train for row in splits.train_eval.inputs.flatten(1))
    assert len(splits.train_eval) <= len(splits.train)


@pytest.mark.parametrize("name", NAMES)
def test_models_are_a_deterministic_function_of_the_seed(name: str) -> None:
    workload = get_workload(name)
    a, b, c = workload.build_model(3), workload.build_model(3), workload.build_model(4)
    pa, pb, pc = (dict(m.named_parameters()) for m in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert any(not torch.equal(pa[k], pc[k]) for k in pa)
    assert all(p.dtype == torch.float32 for p in pa.values())
    # Building a model leaves the global generator alone.
    state = torch.random.get_rng_state()
    workload.build_model(5)
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("name", NAMES)
def test_forward_loss_metric_and_backward(name: str, loaded: dict[str, Splits]) -> None:
    workload = get_workload(name)
    model = workload.build_model(0)
    x, y = _batch(loaded[name])
    out = model(x)
    assert out.shape[0] == x.shape[0]
    loss, metric = workload.loss(out, y), workload.metric(out, y)
    assert loss.shape == ()
    assert metric.shape == ()
    assert torch.isfinite(loss)
    assert torch.isfinite(metric)
    loss.backward()  # type: ignore[no-untyped-call]
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", NAMES)
def test_split_means_are_size_weighted_means_of_chunks(
    name: str, loaded: dict[str, Splits]
) -> None:
    workload = get_workload(name)
    model = workload.build_model(0)
    valid = loaded[name].valid
    with torch.no_grad():
        whole = workload.metric(model(valid.inputs), valid.targets)
        whole_loss = workload.loss(model(valid.inputs), valid.targets)
        cut = max(1, len(valid) // 2)
        parts = [valid.take(slice(0, cut)), valid.take(slice(cut, len(valid)))]
        parts = [p for p in parts if len(p)]
        metric = sum(workload.metric(model(p.inputs), p.targets) * len(p) for p in parts)
        loss = sum(workload.loss(model(p.inputs), p.targets) * len(p) for p in parts)
    assert float(metric) / len(valid) == pytest.approx(float(whole), abs=1e-6)
    assert float(loss) / len(valid) == pytest.approx(float(whole_loss), rel=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_stacked_models_matches_each_model(name: str, loaded: dict[str, Splits]) -> None:
    workload = get_workload(name)
    if not workload.spec.supports_vmap:
        pytest.skip(f"{name} declares supports_vmap = False")
    # float64, so batched and single computations agree to rounding even through deep
    # normalised networks (float32 differences reach ~1% of tiny gradient entries there).
    models = [workload.build_model(s).double() for s in (0, 1)]
    params, buffers = stack_module_state(models)
    x, y = _batch(loaded[name], n=2)
    if x.is_floating_point():
        x = x.double()

    def loss_of(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> torch.Tensor:
        return workload.loss(functional_call(models[0], (p, b), (x,)), y)

    grads, batched = vmap(torch.func.grad_and_value(loss_of))(params, buffers)
    for i, model in enumerate(models):
        model.zero_grad()
        single = workload.loss(model(x), y)
        single.backward()  # type: ignore[no-untyped-call]
        assert batched[i].item() == pytest.approx(single.item(), rel=1e-9)
        for key, p in model.named_parameters():
            assert p.grad is not None
            torch.testing.assert_close(grads[key][i], p.grad, rtol=1e-7, atol=1e-10)


def test_registry_rejects_unknown_names_with_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'digits_mlp'"):
        get_workload("digit_mlp")
    assert all(isinstance(factory(), Workload) for factory in WORKLOADS.values())


def test_built_in_workloads_have_the_documented_sizes() -> None:
    mlp = get_workload("digits_mlp")
    n_params = sum(p.numel() for p in mlp.build_model(0).parameters())
    assert 8_000 <= n_params <= 12_000
    splits = mlp.load(None)
    assert len(splits.train) + len(splits.valid) + len(splits.test) == 1797


def test_teacher_mlp_has_the_documented_sizes_and_label_noise() -> None:
    workload = get_workload("teacher_mlp")
    n_params = sum(p.numel() for p in workload.build_model(0).parameters())
    assert n_params == 32 * 64 + 64 + 64 * 10 + 10  # 2,762, as its description says
    assert "2,762" in workload.spec.description
    splits = workload.load(None)
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (16384, 4096, 10000)
    # Feature scales span two decades (the ill-conditioning the workload is made of).
    std = splits.train.inputs.std(dim=0)
    assert float(std.max() / std.min()) == pytest.approx(100.0, rel=0.1)
    # Every class occurs; no class dominates (resolution 1e-4 on 10,000 test examples).
    counts = torch.bincount(splits.test.targets, minlength=10)
    assert int(counts.min()) > 300
    assert int(counts.max()) < 2500


def test_noisy_quadratic_gradients_are_noisy_around_the_true_gradient() -> None:
    workload = get_workload("noisy_quadratic")
    assert isinstance(workload, NoisyQuadratic)
    splits = workload.load(None)
    model = workload.build_model(0)
    (theta,) = model.parameters()
    grads = []
    for i in range(0, 512, 32):
        model.zero_grad()
        loss = workload.loss(model(splits.train.inputs[i : i + 32]), splits.train.targets[:32])
        loss.backward()  # type: ignore[no-untyped-call]
        assert theta.grad is not None
        grads.append(theta.grad.clone())
    g = torch.stack(grads)
    true_grad = workload.curvature() * theta.detach()
    assert g.std(dim=0).min() > 0
    # The mean stochastic gradient estimates H theta: its error shrinks like 1/sqrt(n).
    se = g.std(dim=0) / math.sqrt(len(grads))
    assert ((g.mean(dim=0) - true_grad).abs() <= 5 * se + 1e-6).float().mean() > 0.95


# --- readers and their errors ----------------------------------------------------------


def test_idx_gzipped_and_plain_read_the_same(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    plain = write_idx(tmp_path / "a-idx3-ubyte", array, gz=False)
    zipped = write_idx(tmp_path / "b-idx3-ubyte", array, gz=True)
    np.testing.assert_array_equal(read_idx(plain), array)
    np.testing.assert_array_equal(read_idx(zipped), array)
    wide = np.array([[1, -2], [3, 70000]], dtype=np.int32)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "w", wide, gz=False)), wide)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"\x01\x02\x08\x01", "not an IDX file"),
        (b"\x00\x00\x42\x01\x00\x00\x00\x01\x00", "type code 0x42"),
        (b"\x00\x00\x08\x03\x00", "truncated IDX header"),
        (idx_bytes(np.zeros((3, 2), np.uint8))[:-1], "payload has 5 bytes"),
    ],
)
def test_malformed_idx_is_one_line_naming_the_file(
    tmp_path: Path, payload: bytes, match: str
) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(payload)
    with pytest.raises(DataFormatError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_corrupt_gzip_is_a_data_format_error(tmp_path: Path) -> None:
    path = tmp_path / "x-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(4, np.uint8)))[:-6])
    with pytest.raises(DataFormatError, match=str(path)):
        read_idx(path)


def test_mnist_with_wrong_dimensions_or_counts_is_rejected(tmp_path: Path) -> None:
    write_mnist(tmp_path / "mnist", gz=False)
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8), gz=False)
    with pytest.raises(DataFormatError, match="3 labels for 8 images"):
        get_workload("mnist_cnn").load(tmp_path)
    write_idx(tmp_path / "mnist" / "t10k-images-idx3-ubyte", np.zeros((8, 28), np.uint8), gz=False)
    with pytest.raises(DataFormatError, match="2 dimensions, expected 3"):
        get_workload("mnist_cnn").load(tmp_path)


def test_fashion_mnist_reads_debians_folder_name(tmp_path: Path) -> None:
    write_mnist(tmp_path / "fashion-mnist", gz=True)
    splits = get_workload("fashion_mnist_cnn").load(tmp_path)
    assert len(splits.test) > 0


DEBIAN_FASHION = Path("/usr/share/datasets")


@pytest.mark.skipif(
    not (DEBIAN_FASHION / "fashion-mnist").is_dir(),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist_from_the_debian_package() -> None:
    splits = get_workload("fashion_mnist_cnn").load(DEBIAN_FASHION)
    assert len(splits.train) + len(splits.valid) == 60_000
    assert len(splits.test) == 10_000
    counts = torch.bincount(splits.test.targets, minlength=10)
    assert counts.tolist() == [1000] * 10  # Fashion-MNIST's test set is balanced


def test_missing_files_name_the_path_and_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"fashion_mnist: missing directory.*fashion-mnist/"):
        get_workload("fashion_mnist_cnn").load(tmp_path)
    write_cifar10(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataFormatError, match=r"data_batch_3\[\.gz\]: missing; expected a CIFAR"):
        get_workload("cifar10_vgg11").load(tmp_path)
    (tmp_path / "text").mkdir()
    with pytest.raises(DataFormatError, match=r"no \*\.txt file"):
        get_workload("char_lstm").load(tmp_path)


def test_cifar_batches_round_trip(tmp_path: Path) -> None:
    batch = cifar_batch(5, 10, b"labels", 0)
    write_pickle(tmp_path / "b", batch)
    images, labels = read_cifar_batch(tmp_path / "b", label_key="labels")
    assert images.shape == (5, 3, 32, 32)
    assert images.dtype == np.uint8
    np.testing.assert_array_equal(images.reshape(5, -1), batch[b"data"])
    np.testing.assert_array_equal(labels, batch[b"labels"])


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo pwned > pwned.txt",))


def test_cifar_reader_refuses_pickles_that_would_run_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Exploit(), b"labels": []}, protocol=2))
    with pytest.raises(DataFormatError, match=r"global (posix|os|nt)\.system is not allowed"):
        read_cifar_batch(path, label_key="labels")
    assert not (tmp_path / "pwned.txt").exists()


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ([1, 2], "expected a pickled dict"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, "key 'labels' missing"),
        ({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, r"expected \[N, 3072\]"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "expected 2 integers"),
    ],
)
def test_malformed_cifar_batches_are_rejected(tmp_path: Path, obj: object, match: str) -> None:
    write_pickle(tmp_path / "batch", obj)
    with pytest.raises(DataFormatError, match=match):
        read_cifar_batch(tmp_path / "batch", label_key="labels")
    (tmp_path / "junk").write_bytes(b"not a pickle at all")
    with pytest.raises(DataFormatError, match="not a CIFAR python pickle batch"):
        read_cifar_batch(tmp_path / "junk", label_key="labels")


def test_cifar_labels_out_of_range_are_rejected(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "cifar-10-batches-py")
    bad = cifar_batch(6, 10, b"labels", 0)
    bad[b"labels"] = [0, 1, 2, 3, 4, 10]
    write_pickle(tmp_path / "cifar-10-batches-py" / "test_batch", bad)
    with pytest.raises(DataFormatError, match=r"test_batch: labels outside 0\.\.9"):
        get_workload("cifar10_resnet32").load(tmp_path)


def test_text_is_utf8_and_long_enough(tmp_path: Path) -> None:
    (tmp_path / "text").mkdir()
    bad = tmp_path / "text" / "bad.txt"
    bad.write_bytes(b"abc\xff\xfe")
    with pytest.raises(
        DataFormatError, match=r"bad\.txt: not UTF-8 text \(invalid byte at offset 3\)"
    ):
        read_text(bad)
    bad.unlink()
    (tmp_path / "text" / "short.txt").write_text("too short", encoding="utf-8")
    with pytest.raises(DataFormatError, match="9 characters of text; char_lstm needs at least"):
        get_workload("char_lstm").load(tmp_path)


def test_character_tokens_are_codepoints_with_one_shared_rest_token(tmp_path: Path) -> None:
    tokens = encode_text("aé — Но")
    assert tokens.tolist() == [ord("a"), ord("é"), ord(" "), VOCAB - 1, ord(" "), 255, 255]
    write_text(tmp_path / "text", repeats=12)
    splits = get_workload("char_transformer").load(tmp_path)
    windows = len(TEXT * 12) // 65
    assert len(splits.train) + len(splits.valid) + len(splits.test) >= windows - 1
    # Targets are the inputs shifted by one character.
    assert torch.equal(splits.train.inputs[:, 1:], splits.train.targets[:, :-1])
