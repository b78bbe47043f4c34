"""Model architectures of the built-in workloads, all vmappable over stacked parameters.

Dependency rule: torch only.

Every model holds parameters and constant buffers only: normalisation is GroupNorm or
LayerNorm (BatchNorm's running statistics are mutable state that neither
`torch.func.functional_call` under `vmap` nor a fair per-trial comparison handles), the
LSTM and attention are written out with plain tensor ops (torch's fused `nn.LSTM` and
`nn.MultiheadAttention` fast paths have no batching rules or branch on their inputs).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as nnf
from torch import nn

__all__ = [
    "MLP",
    "CharLSTM",
    "CharTransformer",
    "ConvNet",
    "ResNet",
    "noisy_quadratic_model",
    "vgg11",
]


class MLP(nn.Module):
    """Fully connected ReLU network on flattened inputs."""

    def __init__(self, sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = nnf.relu(x)
        return x

    def as_sequential(self) -> nn.Sequential:
        """The same function as Flatten / Linear / ReLU modules sharing these parameters
        (the optional hook of the workload contract for the runner's grouped layers)."""
        modules: list[nn.Module] = [nn.Flatten()]
        for i, layer in enumerate(self.layers):
            modules.append(layer)
            if i < len(self.layers) - 1:
                modules.append(nn.ReLU())
        return nn.Sequential(*modules)


class ConvNet(nn.Module):
    """Conv(ReLU) blocks each followed by max pooling, then a ReLU MLP head.

    `convs` lists (out_channels, kernel, padding) per block; `pools` lists (kernel,
    stride) of the max pooling after each block (kernel 1 = none).
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        convs: tuple[tuple[int, int, int], ...],
        pools: tuple[tuple[int, int], ...],
        hidden: tuple[int, ...],
        n_classes: int,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = in_channels, image_size
        for (out, kernel, pad), (pk, ps) in zip(convs, pools, strict=True):
            layers += [nn.Conv2d(channels, out, kernel, padding=pad), nn.ReLU()]
            size = size + 2 * pad - kernel + 1
            if pk > 1:
                layers.append(nn.MaxPool2d(pk, ps))
                size = (size - pk) // ps + 1
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = MLP((channels * size * size, *hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(x))
        return out


def _groups(channels: int) -> int:
    return min(8, channels)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(_groups(cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                nn.GroupNorm(_groups(cout), cout),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nnf.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return nnf.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet (He et al. 2016): 3 stages of `blocks` basic blocks, 16/32/64 channels.

    blocks=5 is ResNet-32. GroupNorm replaces BatchNorm (see the module docstring).
    """

    def __init__(self, blocks: int = 5, n_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1, bias=False), nn.GroupNorm(8, 16), nn.ReLU()
        )
        layers: list[nn.Module] = []
        cin = 16
        for stage, cout in enumerate((16, 32, 64)):
            for b in range(blocks):
                layers.append(_BasicBlock(cin, cout, 2 if stage > 0 and b == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*layers)
        self.fc = nn.Linear(64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        out: torch.Tensor = self.fc(x.mean(dim=(2, 3)))
        return out


def vgg11(n_classes: int = 10) -> nn.Sequential:
    """VGG-11 for 32x32 images (configuration A) with GroupNorm after each convolution."""
    layers: list[nn.Module] = []
    cin = 3
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            assert isinstance(v, int)
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.GroupNorm(_groups(v), v), nn.ReLU()]
            cin = v
    layers += [nn.Flatten(), nn.Linear(512, n_classes)]
    return nn.Sequential(*layers)


class CharLSTM(nn.Module):
    """Character language model: embedding, stacked LSTM layers, linear read-out.

    The recurrence is unrolled in Python over the (fixed) sequence length with plain
    matmuls, so it has no data-dependent control flow and vmaps over stacked parameters.
    """

    def __init__(self, vocab: int, embed: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Embedding(vocab, embed)
        self.cells = nn.ModuleList(
            nn.Linear((embed if i == 0 else hidden) + hidden, 4 * hidden) for i in range(layers)
        )
        self.out = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)  # [B, T, E]
        for cell in self.cells:
            h = x.new_zeros(x.shape[0], self.hidden)
            c = x.new_zeros(x.shape[0], self.hidden)
            outs = []
            for t in range(x.shape[1]):
                gates = cell(torch.cat([x[:, t], h], dim=-1))
                i, f, g, o = gates.chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outs.append(h)
            x = torch.stack(outs, dim=1)
        logits: torch.Tensor = self.out(x)  # [B, T, V]
        return logits


class _Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        shape = (b, t, self.heads, w // self.heads)
        q, k, v = (z.reshape(shape).transpose(1, 2) for z in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(w // self.heads) + mask
        att = torch.softmax(scores, dim=-1) @ v
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, w))
        out: torch.Tensor = x + self.mlp(self.norm2(x))
        return out


class CharTransformer(nn.Module):
    """Decoder-only (causal) pre-norm Transformer language model with learned positions."""

    mask: torch.Tensor

    def __init__(self, vocab: int, width: int, heads: int, layers: int, context: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.pos = nn.Parameter(torch.randn(context, width) * 0.02)
        self.blocks = nn.ModuleList(_Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, vocab)
        causal = torch.full((context, context), float("-inf")).triu(1)
        self.register_buffer("mask", causal, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        x = self.embed(tokens) + self.pos[:t]
        mask = self.mask[:t, :t]
        for block in self.blocks:
            x = block(x, mask)
        logits: torch.Tensor = self.out(self.norm(x))
        return logits


class _Quadratic(nn.Module):
    sqrt_h: torch.Tensor

    def __init__(self, dim: int, curvature: torch.Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.randn(dim))
        self.register_buffer("sqrt_h", curvature.sqrt())

    def forward(self, centres: torch.Tensor) -> torch.Tensor:
        # Per-example loss 0.5 * sum_i h_i (theta_i - c_i)^2 = 0.5 * |output|^2.
        return self.sqrt_h * (self.theta - centres)


def noisy_quadratic_model(curvature: torch.Tensor) -> nn.Module:
    """theta ~ N(0, I) under a diagonal quadratic with the given curvature."""
    return _Quadratic(int(curvature.shape[0]), curvature)
