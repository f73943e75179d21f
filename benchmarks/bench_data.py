"""Input pipeline throughput against torch.utils.data.DataLoader, in one run.

    python benchmarks/bench_data.py            # full: 60000 x 784 float32, batch 256
    python benchmarks/bench_data.py --quick    # 10000 samples, fewer repeats

Cases (samples per second over a whole epoch, best of ``--repeats`` epochs after one
warm-up epoch; every case yields shuffled (x float32 [256, 784], y int64 [256]) batches):

- in memory: ``from_tensor_slices((x, y)).shuffle(N).batch(256)`` (the index fast path)
  vs ``DataLoader(TensorDataset(x, y), batch_size=256, shuffle=True)`` with 0 and 2
  workers; also trainctl's element-by-element path (an identity map before shuffle);
- from an IDX file (uint8 images, as MNIST ships them, uncompressed, memory-mapped):
  ``from_tensor_slices(read_idx(...)).shuffle(N).batch(256).map(to float / 255)`` vs a
  DataLoader over a map-style Dataset reading the same memory map;
- parallel map: a per-element function that releases the GIL (Pillow resize of a 28x28
  image to 112x112 and back) with num_parallel_calls 1, 2, 4.

Prints a Markdown table (the figures in docs/performance.md come from it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainctl.data import Dataset  # noqa: E402
from trainctl.data.readers import read_idx  # noqa: E402

BATCH = 256


def epoch_rate(make_iter, n: int, repeats: int) -> float:
    """Best samples/s over ``repeats`` full epochs, after one warm-up epoch."""
    best = 0.0
    for r in range(repeats + 1):
        start = time.perf_counter()
        count = 0
        for batch in make_iter(r):
            count += len(batch[1])
        elapsed = time.perf_counter() - start
        assert count == n, (count, n)
        if r:
            best = max(best, n / elapsed)
    return best


def write_idx(path: Path, images: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, images.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in images.shape)
    path.write_bytes(header + images.tobytes())


def torch_loader(dataset, workers: int):
    import torch
    from torch.utils.data import DataLoader

    generator = torch.Generator().manual_seed(0)
    return DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers,
                      generator=generator, persistent_workers=workers > 0)


class MemmapImages:
    """A map-style torch Dataset over a uint8 memory map, scaled to float32 / 255."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return (np.asarray(self.images[i], dtype=np.float32) / 255, self.labels[i])


def to_float(x: np.ndarray, y: np.ndarray):
    return x.astype(np.float32) / np.float32(255), y


def pil_roundtrip(x: np.ndarray) -> np.ndarray:
    from PIL import Image

    image = Image.fromarray(x)
    return np.asarray(image.resize((112, 112)).resize((28, 28)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10000 samples, 1 repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = 10_000 if args.quick else 60_000
    repeats = 1 if args.quick else args.repeats

    import torch
    from torch.utils.data import TensorDataset

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    rows: list[tuple[str, float]] = []

    ours = Dataset.from_tensor_slices((x, y)).shuffle(n, seed=0).batch(BATCH)
    rows.append(("in memory: trainctl shuffle+batch (index fast path)",
                 epoch_rate(lambda r: ours.iterate(r), n, repeats)))
    slow = Dataset.from_tensor_slices((x, y)).map(lambda a, b: (a, b)).shuffle(n, seed=0).batch(BATCH)
    rows.append(("in memory: trainctl element by element (identity map first)",
                 epoch_rate(lambda r: slow.iterate(r), n, 1)))
    tensors = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    for workers in (0, 2):
        loader = torch_loader(tensors, workers)
        rows.append((f"in memory: DataLoader(TensorDataset), num_workers={workers}",
                     epoch_rate(lambda r: loader, n, repeats)))

    with tempfile.TemporaryDirectory() as tmp:
        images = (x * 255).astype(np.uint8)
        path = Path(tmp) / "images-idx3-ubyte"
        write_idx(path, images.reshape(n, 28, 28))
        start = time.perf_counter()
        mapped = read_idx(path, mmap=True).reshape(n, 784)
        open_ms = (time.perf_counter() - start) * 1e3
        from_file = Dataset.from_tensor_slices((mapped, y)).shuffle(n, seed=0).batch(BATCH).map(to_float)
        rows.append((f"IDX file (mmap, opened in {open_ms:.1f} ms): trainctl shuffle+batch+scale",
                     epoch_rate(lambda r: from_file.iterate(r), n, repeats)))
        for workers in (0, 2):
            loader = torch_loader(MemmapImages(mapped, y), workers)
            rows.append((f"IDX file (mmap): DataLoader(map-style Dataset), num_workers={workers}",
                         epoch_rate(lambda r: loader, n, 1)))

    small = (x[:4000 if args.quick else 8000].reshape(-1, 28, 28) * 255).astype(np.uint8)
    ys = y[:len(small)]
    for calls in (None, 2, 4):
        ds = Dataset.from_tensor_slices((small, ys)).map(
            lambda a, b: (pil_roundtrip(a), b), num_parallel_calls=calls).batch(BATCH)
        rows.append((f"parallel map (Pillow resize per element), num_parallel_calls={calls}",
                     epoch_rate(lambda r: ds.iterate(r), len(small), 1)))

    print(f"\n{n} x 784 float32, batch {BATCH}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
          f"torch {torch.__version__}\n")
    print("| case | samples/s |")
    print("| --- | ---: |")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
