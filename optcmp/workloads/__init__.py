"""Workloads: model/dataset pairs behind one small interface (see `_base` for the contract).

Dependency rule: torch, numpy, attrs, optcmp_data (scikit-learn for the digits data).
Built in: teacher_mlp, digits_mlp, digits_cnn, noisy_quadratic (no files needed); with data_dir:
mnist_cnn, fashion_mnist_cnn, cifar10_resnet32, cifar10_vgg11, cifar100_cnn, char_lstm,
char_transformer (file layout in `_files`).
"""

from optcmp.workloads._arrays import ArrayConfig
from optcmp.workloads._base import Splits, TensorSplit, Workload, WorkloadSpec, seeded
from optcmp.workloads._common import make_splits
from optcmp.workloads._loaders import read_cifar_batch, read_idx, read_text
from optcmp.workloads._registry import (
    WORKLOAD_SOURCES,
    WORKLOADS,
    get_workload,
    register_workload,
)

__all__ = [
    "WORKLOADS",
    "WORKLOAD_SOURCES",
    "ArrayConfig",
    "Splits",
    "TensorSplit",
    "Workload",
    "WorkloadSpec",
    "get_workload",
    "make_splits",
    "read_cifar_batch",
    "read_idx",
    "read_text",
    "register_workload",
    "seeded",
]
