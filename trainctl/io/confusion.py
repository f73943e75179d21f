"""A confusion matrix as a picture (``trainctl eval --plot confusion.png``), drawn with
matplotlib's object API (no display needed) and written atomically."""

from __future__ import annotations

import os
from pathlib import Path

from trainctl.io.atomic import write_atomically

DPI = 100


def confusion_figure(matrix: list[list[int]], class_names: list[str], title: str = ""):
    """A Figure of ``matrix`` [K, K] (rows: true class, columns: predicted), each cell
    annotated with its count, a colour scale and class names on both axes."""
    import numpy as np
    from matplotlib.figure import Figure

    counts = np.asarray(matrix)
    k = len(class_names)
    side = max(4.0, 0.5 * k + 2)
    fig = Figure(figsize=(side + 1, side), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    high = counts.max() if counts.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center",
                    color="white" if counts[i, j] > high / 2 else "black")
    if title:
        ax.set_title(title)
    return fig


def save_confusion(path: str | os.PathLike, matrix: list[list[int]], class_names: list[str],
                   title: str = "") -> Path:
    """Draw and write the confusion matrix to ``path`` (png, svg or pdf by its suffix)
    atomically; OutputError when it cannot be written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    fig = confusion_figure(matrix, class_names, title)
    FigureCanvasAgg(fig)
    fmt = path.suffix.lstrip(".").lower() or "png"

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fig.savefig(fh, format=fmt, dpi=DPI)

    return write_atomically(path, write)
