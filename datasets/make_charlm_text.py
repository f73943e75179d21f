"""Write ``pydoc-topics.txt``: English text for the character language model
(``specs/charlm_transformer.yaml``), made offline from the Python standard library.

The text is that of ``help()``'s topics (``pydoc_data.topics.topics``, the Python
reference manual's sections that ``help('FOR')`` etc. print), topics in sorted order,
until at least ``CHARS`` characters, cut at a topic's end. Characters outside printable
ASCII are mapped to ASCII (typographic quotes and dashes) or to ``?``, so the vocabulary
is at most the 95 printable ASCII characters plus the newline. Deterministic for a given
Python version (the committed file was made with Python 3.11.7)::

    python datasets/make_charlm_text.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pydoc_data.topics

CHARS = 200_000
OUT = Path(__file__).resolve().parent / "pydoc-topics.txt"
ASCII = {"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "...", "\t": "    "}


def to_ascii(text: str) -> str:
    out = (ASCII.get(c, c if c == "\n" or " " <= c <= "~" else "?") for c in text)
    return "".join(out)


def corpus(chars: int = CHARS) -> str:
    parts, size = [], 0
    topics = pydoc_data.topics.topics
    for name in sorted(topics):
        parts.append(to_ascii(topics[name]).strip("\n") + "\n\n")
        size += len(parts[-1])
        if size >= chars:
            break
    return "".join(parts)


def main() -> None:
    text = corpus()
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, OUT)
    print(f"wrote {OUT.name}: {len(text):,} characters, {len(set(text))} distinct "
          f"(Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
