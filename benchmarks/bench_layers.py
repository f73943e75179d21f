"""A forward + backward step of each new layer type, ours (tape) against torch.nn
(torch.autograd), same shapes and weights' sizes, float32, CPU.

    python benchmarks/bench_layers.py [--reps 21] [--threads 1]

Per layer: milliseconds per forward+backward (the median over ``--reps`` repetitions, ours
and torch's back to back in each so both see the same machine load) and the ratio ours /
torch (median of the per-repetition ratios). Prints a Markdown table (the figures in
docs/performance.md come from it). A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import trainctl as tc
from trainctl.nn.layers import (GRU, LSTM, BatchNormalization, Conv2D, LayerNormalization,
                                MaxPooling2D, MultiHeadAttention)

N = 64


def cases():
    """(name, our layer, input shape without batch, torch module, torch input transform)."""
    return [
        ("conv2d 16→32, 3x3 same, 16x16", Conv2D(filters=32, kernel_size=3, padding="same"),
         (16, 16, 16), torch.nn.Conv2d(16, 32, 3, padding=1), None),
        ("max_pooling2d 2x2, 32x16x16", MaxPooling2D(), (32, 16, 16), torch.nn.MaxPool2d(2), None),
        ("batch_normalization, 32x16x16", BatchNormalization(), (32, 16, 16),
         torch.nn.BatchNorm2d(32), None),
        ("layer_normalization, 32x64", LayerNormalization(), (32, 64), torch.nn.LayerNorm(64), None),
        ("multi_head_attention 4 heads, 32x64", MultiHeadAttention(num_heads=4, key_dim=16),
         (32, 64), torch.nn.MultiheadAttention(64, 4, batch_first=True), "self"),
        ("lstm 64, 32 steps x 32", LSTM(units=64), (32, 32),
         torch.nn.LSTM(32, 64, batch_first=True), "rnn"),
        ("gru 64, 32 steps x 32", GRU(units=64), (32, 32),
         torch.nn.GRU(32, 64, batch_first=True), "rnn"),
    ]


def ours_step(layer, x):
    with tc.GradientTape() as tape:
        loss = tc.ops.sum(layer(x, training=True))
    tape.gradient(loss, layer.trainable_weights + [x])


def torch_step(module, x, how):
    x.grad = None
    if how == "self":
        y = module(x, x, x, need_weights=False)[0]
    elif how == "rnn":
        y = module(x)[1]
        y = y[0] if isinstance(y, tuple) else y
    else:
        y = module(x)
    y.sum().backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"| layer (batch {N}) | ours ms | torch ms | ours / torch |\n| --- | --- | --- | --- |")
    for name, layer, shape, module, how in cases():
        tc.manual_seed(0)
        layer.build(shape)
        data = torch.randn(N, *shape, generator=torch.Generator().manual_seed(0))
        x = tc.Variable(data, name="x")
        xt = data.clone().requires_grad_(True)
        ours_step(layer, x)
        torch_step(module, xt, how)
        a, b = [], []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            ours_step(layer, x)
            t1 = time.perf_counter()
            torch_step(module, xt, how)
            t2 = time.perf_counter()
            a.append(t1 - t0)
            b.append(t2 - t1)
        ratio = statistics.median(x / y for x, y in zip(a, b))
        print(f"| {name} | {statistics.median(a) * 1e3:.2f} | {statistics.median(b) * 1e3:.2f} "
              f"| {ratio:.2f} |")


if __name__ == "__main__":
    main()
