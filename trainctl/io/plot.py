"""Training curves of a run with matplotlib (``trainctl plot RUN -o curves.png``).

One panel per value (the loss, then each metric), in order of first appearance in
metrics.jsonl; in each, up to three lines against the global step: ``train`` (the epoch
records' value, with markers), ``validation`` (their ``val_`` value) and ``train (steps)``
(the step records', when the run logged steps). Values that are null (non-finite) are left
out. The figure is built with matplotlib's object API (no pyplot, no display needed).
"""

from __future__ import annotations

import math
import os
from typing import Any

from trainctl.io.runs import value_keys

PANEL_PX = (400, 300)  # one panel's size in pixels at DPI
DPI = 100
COLUMNS = 3


def panels(records: list[dict[str, Any]]) -> list[str]:
    """The values drawn, one panel each: the keys without their ``val_`` prefix."""
    names: list[str] = []
    for key in value_keys(records):
        base = key[4:] if key.startswith("val_") else key
        if base not in names:
            names.append(base)
    return names


def default_size(n_panels: int) -> tuple[int, int]:
    """(width, height) in pixels for ``n_panels`` panels (up to 3 per row)."""
    cols = max(1, min(COLUMNS, n_panels))
    rows = max(1, math.ceil(n_panels / cols))
    return cols * PANEL_PX[0], rows * PANEL_PX[1]


def _series(records, key) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        if isinstance(r.get("step"), int) and isinstance(v, (int, float)) and not isinstance(v, bool):
            xs.append(r["step"])
            ys.append(float(v))
    return xs, ys


def plot_records(records: list[dict[str, Any]], title: str = "",
                 size: tuple[int, int] | None = None):
    """A matplotlib Figure of ``records`` (see the module docstring); ``size`` in pixels
    (default :func:`default_size`). Each line's label is ``train``, ``validation`` or
    ``train (steps)``; each axis's title is its value's key."""
    from matplotlib.figure import Figure

    names = panels(records) or ["loss"]
    width, height = size or default_size(len(names))
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    cols = max(1, min(COLUMNS, len(names)))
    rows = math.ceil(len(names) / cols)
    epochs = [r for r in records if r.get("kind", "epoch") == "epoch"]
    steps = [r for r in records if r.get("kind") == "step"]
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        for label, rows_of, key, style in (
                ("train (steps)", steps, name, {"alpha": 0.5, "linewidth": 1}),
                ("train", epochs, name, {"marker": "o", "markersize": 3}),
                ("validation", epochs, f"val_{name}", {"marker": "o", "markersize": 3}),
                ("validation (steps)", steps, f"val_{name}", {"alpha": 0.5, "linewidth": 1})):
            xs, ys = _series(rows_of, key)
            if xs:
                ax.plot(xs, ys, label=label, **style)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def save_figure(fig, path: str | os.PathLike) -> None:
    """Write ``fig`` to ``path`` (format from the extension: png, svg, pdf) at its size."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(os.fspath(path), dpi=DPI)
