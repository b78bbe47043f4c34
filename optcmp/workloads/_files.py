"""Workloads on datasets the user provides in the study file's `data_dir` (layout in
docs/study-file.md).

Dependency rule: torch, numpy and this subpackage (the readers are in `_loaders`).

Expected layout under DATA_DIR (each file may also be gzipped, `NAME.gz`):

- mnist_cnn:          DATA_DIR/mnist/{train-images-idx3-ubyte, train-labels-idx1-ubyte,
                      t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte}
- fashion_mnist_cnn:  DATA_DIR/fashion_mnist/ (or DATA_DIR/fashion-mnist/, the folder of
  Debian's dataset-fashion-mnist package: data_dir = "/usr/share/datasets") with the
  same four file names
- cifar10_resnet32, cifar10_vgg11:
                      DATA_DIR/cifar-10-batches-py/{data_batch_1..data_batch_5, test_batch}
- cifar100_cnn:       DATA_DIR/cifar-100-python/{train, test} (fine labels)
- char_lstm, char_transformer:
                      DATA_DIR/text/*.txt, UTF-8, concatenated in name order

Validation splits are carved from the training files with a fixed seed (1/12 of MNIST's
training images = 5,000 of 60,000; 1/10 of CIFAR's = 5,000 of 50,000; 1/10 of the text's
training windows); the test split is the dataset's own test set (the last 10% of the text
for the character models). Pixels are standardised per channel with the training split's
mean and std. No data augmentation.

Character models: the text is read as Unicode characters; characters U+0000..U+00FE are
their own token, every other character shares token 255, so the vocabulary (and the model)
does not depend on the file. Examples are non-overlapping windows of 65 characters (64
inputs, 64 next-character targets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from optcmp.workloads._base import Splits, WorkloadSpec
from optcmp.workloads._common import (
    Classification,
    LanguageModel,
    carve_valid,
    make_splits,
    standardize,
)
from optcmp.workloads._loaders import find_file, read_cifar_batch, read_idx, read_text
from optcmp.workloads._models import MLP, CharLSTM, CharTransformer, ConvNet, ResNet, vgg11
from optcmp_data import ConfigError, DataFormatError

__all__ = [
    "CONTEXT",
    "VOCAB",
    "CharLSTMWorkload",
    "CharTransformerWorkload",
    "Cifar10ResNet32",
    "Cifar10VGG11",
    "Cifar100CNN",
    "FashionMnistCNN",
    "FashionMnistMLP",
    "MnistCNN",
]

VOCAB = 256
CONTEXT = 64

Arrays = tuple[npt.NDArray[Any], npt.NDArray[Any]]


def _data_spec(name: str, description: str, *, target: float, **facts: Any) -> WorkloadSpec:
    """The spec of a workload of this module: it reads data_dir and minimises an error
    rate, with one target for validation and test; `facts` are its other WorkloadSpec
    fields (metric_name "error_rate" and batch_size 128 unless given)."""
    return WorkloadSpec(
        name,
        description,
        direction="min",
        valid_target=target,
        test_target=target,
        needs_data_dir=True,
        **{"metric_name": "error_rate", "batch_size": 128, **facts},
    )


def _require_dir(
    data_dir: Path | None, sub: str, workload: str, aliases: tuple[str, ...] = ()
) -> Path:
    """DATA_DIR/sub, or the first of DATA_DIR/alias that exists (e.g. Debian's
    /usr/share/datasets/fashion-mnist for fashion_mnist)."""
    if data_dir is None:
        raise ConfigError(
            f"workload {workload}: needs data_dir in the study file, a folder holding {sub}/"
        )
    for name in (sub, *aliases):
        directory = Path(data_dir) / name
        if directory.is_dir():
            return directory
    tried = " or ".join(f"{n}/" for n in (sub, *aliases))
    raise DataFormatError(
        f"{Path(data_dir) / sub}: missing directory; workload {workload} reads {tried} "
        f"in {data_dir}"
    )


def _check_labels(path: Path, labels: npt.NDArray[Any], n_classes: int) -> None:
    if labels.size and (labels.min() < 0 or labels.max() > n_classes - 1):
        raise DataFormatError(f"{path}: labels outside 0..{n_classes - 1}")


def _split_train(x: npt.NDArray[Any], y: npt.NDArray[Any], n_valid: int) -> tuple[Arrays, Arrays]:
    if n_valid < 1 or n_valid >= len(y):
        raise DataFormatError(f"training set of {len(y)} examples is too small to carve a split")
    tr, va = carve_valid(len(y), n_valid)
    return (x[tr], y[tr]), (x[va], y[va])


def _image_splits(train: Arrays, test: Arrays, n_valid: int, device: torch.device | str) -> Splits:
    (xtr, ytr), (xva, yva) = _split_train(train[0], train[1], n_valid)
    xtr_s, xva_s, xte_s = standardize(xtr, xva, test[0], axis=(0, 2, 3))
    return make_splits((xtr_s, ytr), (xva_s, yva), (xte_s, test[1]), device=device)


# --- MNIST / Fashion-MNIST (IDX) -------------------------------------------------------


def _read_idx_pair(directory: Path, prefix: str) -> Arrays:
    images_path = find_file(directory, f"{prefix}-images-idx3-ubyte", what="IDX images [N, 28, 28]")
    labels_path = find_file(directory, f"{prefix}-labels-idx1-ubyte", what="IDX labels [N]")
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.dtype != np.uint8 or images.shape[1:] != (28, 28):
        raise DataFormatError(
            f"{images_path}: images have shape {images.shape} dtype {images.dtype}, "
            "expected [N, 28, 28] uint8"
        )
    if labels.shape[0] != images.shape[0]:
        raise DataFormatError(
            f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images in "
            f"{images_path.name}"
        )
    _check_labels(labels_path, labels, 10)
    return images[:, None].astype(np.float32), labels.astype(np.int64)


class _MnistLike(Classification):
    subdir = "mnist"
    aliases: tuple[str, ...] = ()

    def load(self, data_dir: Path | None, *, device: torch.device | str = "cpu") -> Splits:
        directory = _require_dir(data_dir, self.subdir, self.spec.name, self.aliases)
        train = _read_idx_pair(directory, "train")
        test = _read_idx_pair(directory, "t10k")
        return _image_splits(train, test, max(1, round(len(train[1]) / 12)), device)

    def _make_model(self) -> nn.Module:
        # DeepOBS's 2c2d: conv 32 5x5, pool, conv 64 5x5, pool, fc 1024, fc 10.
        return ConvNet(
            1,
            28,
            convs=((32, 5, 2), (64, 5, 2)),
            pools=((2, 2), (2, 2)),
            hidden=(1024,),
            n_classes=10,
        )


class MnistCNN(_MnistLike):
    spec = _data_spec(
        "mnist_cnn",
        "2-conv 2-dense CNN on MNIST (IDX files)",
        step_budget=4000,
        eval_interval=200,
        target=0.01,
        eval_batch_size=1000,
    )


class _FashionMnist(_MnistLike):
    subdir = "fashion_mnist"
    # Debian's dataset-fashion-mnist package installs /usr/share/datasets/fashion-mnist/.
    aliases = ("fashion-mnist",)


class FashionMnistCNN(_FashionMnist):
    spec = _data_spec(
        "fashion_mnist_cnn",
        "2-conv 2-dense CNN on Fashion-MNIST (IDX files)",
        step_budget=4000,
        eval_interval=200,
        target=0.08,
        eval_batch_size=1000,
    )


class FashionMnistMLP(_FashionMnist):
    """Fashion-MNIST with a one-hidden-layer MLP: the paper's Fashion-MNIST comparison
    at a size one CPU core trains in minutes (the CNN is a GPU workload)."""

    spec = _data_spec(
        "fashion_mnist_mlp",
        "MLP 784-128-10 (101,770 parameters) on Fashion-MNIST (IDX files)",
        step_budget=1500,
        eval_interval=250,
        target=0.14,
        eval_batch_size=2000,
    )

    def _make_model(self) -> nn.Module:
        return MLP((784, 128, 10))


# --- CIFAR (python pickle batches) -------------------------------------------------------


def _concat(parts: list[Arrays]) -> Arrays:
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _read_cifar(directory: Path, name: str, *, what: str, label_key: str, n_classes: int) -> Arrays:
    path = find_file(directory, name, what=what)
    x, y = read_cifar_batch(path, label_key=label_key)
    _check_labels(path, y, n_classes)
    return x, y


def _cifar10(directory: Path) -> tuple[Arrays, Arrays]:
    parts = [
        _read_cifar(
            directory, name, what="a CIFAR-10 python pickle batch", label_key="labels", n_classes=10
        )
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    ]
    return _concat(parts[:5]), parts[5]


class _Cifar10(Classification):
    def load(self, data_dir: Path | None, *, device: torch.device | str = "cpu") -> Splits:
        directory = _require_dir(data_dir, "cifar-10-batches-py", self.spec.name)
        train, test = _cifar10(directory)
        return _image_splits(train, test, max(1, len(train[1]) // 10), device)


class Cifar10ResNet32(_Cifar10):
    spec = _data_spec(
        "cifar10_resnet32",
        "ResNet-32 (GroupNorm) on CIFAR-10 (python pickle batches)",
        step_budget=20000,
        eval_interval=500,
        target=0.12,
        eval_batch_size=500,
    )

    def _make_model(self) -> nn.Module:
        return ResNet(blocks=5, n_classes=10)


class Cifar10VGG11(_Cifar10):
    spec = _data_spec(
        "cifar10_vgg11",
        "VGG-11 (GroupNorm) on CIFAR-10 (python pickle batches)",
        step_budget=20000,
        eval_interval=500,
        target=0.15,
        eval_batch_size=500,
    )

    def _make_model(self) -> nn.Module:
        return vgg11(10)


class Cifar100CNN(Classification):
    spec = _data_spec(
        "cifar100_cnn",
        "3-conv 3-dense CNN (DeepOBS 3c3d) on CIFAR-100 (python pickle files)",
        step_budget=15000,
        eval_interval=500,
        target=0.5,
        eval_batch_size=500,
    )

    def load(self, data_dir: Path | None, *, device: torch.device | str = "cpu") -> Splits:
        directory = _require_dir(data_dir, "cifar-100-python", self.spec.name)
        pairs = [
            _read_cifar(
                directory,
                name,
                what="a CIFAR-100 python pickle file",
                label_key="fine_labels",
                n_classes=100,
            )
            for name in ("train", "test")
        ]
        return _image_splits(pairs[0], pairs[1], max(1, len(pairs[0][1]) // 10), device)

    def _make_model(self) -> nn.Module:
        return ConvNet(
            3,
            32,
            convs=((64, 5, 0), (96, 3, 0), (128, 3, 1)),
            pools=((3, 2), (3, 2), (3, 2)),
            hidden=(512, 256),
            n_classes=100,
        )


# --- character language models (UTF-8 text) ------------------------------------------


def encode_text(text: str) -> npt.NDArray[np.int64]:
    """Characters as tokens 0..255: U+0000..U+00FE themselves, everything else 255."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)
    return np.minimum(codes, VOCAB - 1)


def _windows(tokens: npt.NDArray[np.int64]) -> Arrays:
    n = len(tokens) // (CONTEXT + 1)
    w = tokens[: n * (CONTEXT + 1)].reshape(n, CONTEXT + 1)
    return w[:, :-1], w[:, 1:]


def _text_splits(data_dir: Path | None, workload: str, device: torch.device | str) -> Splits:
    directory = _require_dir(data_dir, "text", workload)
    files = sorted(directory.glob("*.txt"))
    if not files:
        raise DataFormatError(f"{directory}: no *.txt file; expected UTF-8 text for {workload}")
    text = "".join(read_text(f) for f in files)
    tokens = encode_text(text)
    need = 10 * (CONTEXT + 1)  # one test window in the last 10%, two training windows
    if len(tokens) < need:
        raise DataFormatError(
            f"{directory}: {len(tokens)} characters of text; {workload} needs at least {need}"
        )
    cut = int(len(tokens) * 0.9)
    train_x, train_y = _windows(tokens[:cut])
    test = _windows(tokens[cut:])
    train, valid = _split_train(train_x, train_y, max(1, len(train_x) // 10))
    return make_splits(train, valid, test, device=device, input_dtype=torch.int64)


class _TextWorkload(LanguageModel):
    def load(self, data_dir: Path | None, *, device: torch.device | str = "cpu") -> Splits:
        return _text_splits(data_dir, self.spec.name, device)


class CharLSTMWorkload(_TextWorkload):
    spec = _data_spec(
        "char_lstm",
        "2-layer LSTM (256 units) character language model on UTF-8 text",
        metric_name="char_error_rate",
        batch_size=32,
        step_budget=10000,
        eval_interval=500,
        target=0.45,
        eval_batch_size=256,
    )

    def _make_model(self) -> nn.Module:
        return CharLSTM(VOCAB, embed=64, hidden=256, layers=2)


class CharTransformerWorkload(_TextWorkload):
    spec = _data_spec(
        "char_transformer",
        "4-layer causal Transformer (width 128) character language model on UTF-8 text",
        metric_name="char_error_rate",
        batch_size=32,
        step_budget=10000,
        eval_interval=500,
        target=0.45,
        eval_batch_size=256,
    )

    def _make_model(self) -> nn.Module:
        return CharTransformer(VOCAB, width=128, heads=4, layers=4, context=CONTEXT)
