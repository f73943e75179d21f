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
- parallel map, two per-element functions: Pillow resize of a 28x28 image to 112x112 and
  back (about 0.2 ms, a third of it holding the GIL), and a larger Pillow resize of a
  64x64 RGB image to 192x192 and down to 96x96 (mostly without the GIL), with
  num_parallel_calls None (serial), 2, 4 and AUTOTUNE, each with its ratio to the serial
  map, against DataLoader over a map-style Dataset calling the same function with 0 and 2
  worker processes. Every setting of a case runs one epoch per round, the rounds
  interleaved so that a change in the machine's load hits all settings alike; best of
  ``--repeats`` rounds (3) after a warm-up round, ``--quick`` or not.
- parallel map of a tiny function (``x * 2`` on 8 floats, a few µs holding the GIL): the
  cost of handing elements to threads, which no parallelism can hide; and of a function
  waiting 0.2 ms without the GIL (``time.sleep``, a stand-in for a file read), which
  threads overlap even on a machine without idle cores.
- parallel map of realistic decoding: image files in an image folder (RGB, smooth
  gradients plus noise so they compress like photographs), 64x64 PNG and 224x224 JPEG
  (quality 90), each read, decoded and resized to 96x96 float32 [0, 1] by Pillow per
  element; and of numpy and torch work on larger arrays (``np.sort`` of 65,536 float32,
  a 256x256 float32 matmul in torch on one thread).

For each parallel case the table says when the map ran serially (its
``serial_reason``), and ``--gil`` adds the share of the bare function that runs without
the GIL, inferred with Amdahl's law from a plain 2-thread ``ThreadPoolExecutor.map``
speed-up ``s`` (share = 2 (1 - 1/s)); it is only meaningful when 2 CPUs are idle.

``--parallel-only`` runs the parallel map cases alone, ``--only TEXT`` those whose name
holds TEXT (``--only "image folder"``).

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


def one_epoch(batches, n: int) -> float:
    """Samples/s of one pass over ``batches`` (which must hold ``n`` samples)."""
    start = time.perf_counter()
    count = 0
    for batch in batches:
        count += len(batch[1])
    elapsed = time.perf_counter() - start
    assert count == n, (count, n)
    return n / elapsed


def epoch_rate(make_iter, n: int, repeats: int) -> float:
    """Best samples/s over ``repeats`` full epochs, after one warm-up epoch."""
    rates = [one_epoch(make_iter(r), n) for r in range(repeats + 1)]
    return max(rates[1:])


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


def pil_rgb(x: np.ndarray) -> np.ndarray:
    from PIL import Image

    image = Image.fromarray(x)
    return np.asarray(image.resize((192, 192)).resize((96, 96)))


class Mapped:
    """A map-style torch Dataset applying ``fn`` to each image (DataLoader's equivalent)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, fn):
        self.images, self.labels, self.fn = images, labels, fn

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.fn(self.images[i]), self.labels[i]


def parallel_rows(fn, images: np.ndarray, labels: np.ndarray, name: str,
                  loader: bool = True) -> list[tuple[str, float]]:
    """trainctl's map at several num_parallel_calls, then DataLoader, as ratios to the
    serial map: every setting runs one epoch per round, rounds interleaved (so a change of
    the machine's load hits every setting alike), best of ``ROUNDS`` after a warm-up round."""
    from trainctl.data import AUTOTUNE

    if ONLY and ONLY not in name:
        return []
    runs, maps = {}, {}
    for calls in (None, 2, 4, AUTOTUNE):
        label = "AUTOTUNE" if calls == AUTOTUNE else str(calls)
        maps[label] = Dataset.from_tensor_slices((images, labels)).map(
            lambda a, b: (fn(a), b), num_parallel_calls=calls)
        runs[f"trainctl map, num_parallel_calls={label}"] = maps[label].batch(BATCH).iterate
    for workers in (0, 2) if loader else ():
        runs[f"DataLoader, num_workers={workers}"] = (
            lambda r, dl=torch_loader(Mapped(images, labels, fn), workers): dl)
    best, serially = dict.fromkeys(runs, 0.0), {label: [] for label in maps}
    for r in range(ROUNDS + 1):
        for what, make in runs.items():
            rate = one_epoch(make(r), len(labels))
            best[what] = max(best[what], rate if r else 0.0)
        for label, mapped in maps.items():
            reason = getattr(mapped, "serial_reason", None)   # None before the fall-back existed
            if r and reason:
                serially[label].append(reason)
    serial = best["trainctl map, num_parallel_calls=None"]
    rows = []
    for what, rate in best.items():
        label = what.rsplit("=", 1)[-1]
        reasons = serially.get(label, []) if what.startswith("trainctl") else []
        note = f"; ran serially in {len(reasons)} of {ROUNDS} epochs: {reasons[-1]}" if reasons else ""
        rows.append((f"{name}: {what} ({rate / serial:.2f}x serial map{note})", rate))
    if GIL_SHARE:
        rows.append((f"{name}: share of fn without the GIL (bare 2-thread pool, Amdahl): "
                     f"{gil_free_share(fn, images):.0%}", float("nan")))
    return rows


ROUNDS = 3
ONLY = ""
GIL_SHARE = False


def gil_free_share(fn, items) -> float:
    """2 (1 - 1/s), s the speed-up of a plain 2-thread pool over a loop (best of 3 each)."""
    from concurrent.futures import ThreadPoolExecutor

    items = list(items[:400])

    def best(run) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return min(times)

    serial = best(lambda: [fn(a) for a in items])
    with ThreadPoolExecutor(2) as pool:
        threaded = best(lambda: list(pool.map(fn, items, chunksize=8)))
    return min(1.0, max(0.0, 2 * (1 - threaded / serial)))


def write_images(folder: Path, count: int, side: int, fmt: str, rng) -> np.ndarray:
    """``count`` RGB images of ``side`` px in ``folder/<class>/`` (an image folder); their paths."""
    from PIL import Image

    yy, xx = np.mgrid[0:side, 0:side] / side
    paths = []
    for k in range(count):
        phase = rng.random(3)
        base = 255 * np.stack([(xx + phase[0]) % 1, (yy + phase[1]) % 1, (xx * yy + phase[2]) % 1], -1)
        noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"class{k % 2}" / f"{k:05d}.{fmt.lower()}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(noisy).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        paths.append(str(path))
    return np.array(paths)


def decode_resize(path) -> np.ndarray:
    from PIL import Image

    with Image.open(str(path)) as image:
        small = image.convert("RGB").resize((96, 96), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.float32) / np.float32(255)


def numpy_sort(a: np.ndarray) -> np.ndarray:
    return np.sort(a)


def torch_matmul(a: np.ndarray) -> np.ndarray:
    import torch

    t = torch.from_numpy(a)
    return (t @ t).numpy()


LOAD_AT_START = os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10000 samples, 1 repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parallel-only", action="store_true", help="only the parallel map cases")
    parser.add_argument("--gil", action="store_true", help="add each parallel case's GIL-free share")
    parser.add_argument("--only", default="", help="only the parallel cases whose name holds this text")
    args = parser.parse_args()
    global GIL_SHARE, ROUNDS, ONLY
    GIL_SHARE, ROUNDS, ONLY = args.gil, args.repeats, args.only
    n = 10_000 if args.quick else 60_000
    repeats = 1 if args.quick else args.repeats

    import torch
    from torch.utils.data import TensorDataset

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    rows: list[tuple[str, float]] = []

    if args.parallel_only:
        rows += parallel_cases(x, y, args.quick, rng)
        return report(rows, n)
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

    rows += parallel_cases(x, y, args.quick, rng)
    report(rows, n)


def parallel_cases(x: np.ndarray, y: np.ndarray, quick: bool, rng) -> list[tuple[str, float]]:
    small = (x[:4000 if quick else 8000].reshape(-1, 28, 28) * 255).astype(np.uint8)
    rows = parallel_rows(pil_roundtrip, small, y[:len(small)], "Pillow 28→112→28")
    rgb = rng.integers(0, 256, (500 if quick else 1500, 64, 64, 3), dtype=np.uint8)
    rows += parallel_rows(pil_rgb, rgb, y[:len(rgb)], "Pillow RGB 64→192→96")
    tiny = x[:20000, :8].copy()
    rows += parallel_rows(double, tiny, y[:len(tiny)], "x * 2 on 8 floats", loader=False)
    rows += parallel_rows(wait_a_bit, tiny[:2000], y[:2000], "wait 0.2 ms without the GIL", loader=False)
    count = 300 if quick else 1000
    with tempfile.TemporaryDirectory() as tmp:
        for side, fmt in ((64, "PNG"), (224, "JPEG")):
            paths = write_images(Path(tmp) / f"{fmt}{side}", count, side, fmt, rng)
            rows += parallel_rows(decode_resize, paths, y[:count],
                                  f"image folder, {side}x{side} {fmt} decode+resize to 96x96")
    arrays = rng.random((200 if quick else 600, 65536), dtype=np.float32)
    rows += parallel_rows(numpy_sort, arrays, y[:len(arrays)], "np.sort of 65,536 float32", loader=False)
    mats = rng.random((200 if quick else 600, 256, 256), dtype=np.float32)
    rows += parallel_rows(torch_matmul, mats, y[:len(mats)], "torch 256x256 matmul (1 thread)", loader=False)
    return rows


def wait_a_bit(a: np.ndarray) -> np.ndarray:
    time.sleep(0.0002)
    return a


def double(a: np.ndarray) -> np.ndarray:
    return a * 2


def report(rows: list[tuple[str, float]], n: int) -> None:
    import torch

    print(f"\n{n} x 784 float32, batch {BATCH}, {os.cpu_count()} CPUs (load average "
          f"{os.getloadavg()[0]:.1f} at the end, {LOAD_AT_START:.1f} at the start), numpy {np.__version__}, "
          f"torch {torch.__version__}\n")
    print("| case | samples/s |")
    print("| --- | ---: |")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} |" if rate == rate else f"| {name} | |")


if __name__ == "__main__":
    main()
