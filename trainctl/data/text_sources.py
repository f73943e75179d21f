"""Text as token sequences for language models: ``char_sequences``.

The characters of UTF-8 text files (read in sorted order, concatenated) are numbered by
their rank in the sorted set of distinct characters (the vocabulary, ``class_names``), and
cut into windows: sample i holds the ids of characters [i·stride, i·stride + T) as
features and those of [i·stride + 1, i·stride + T + 1) as labels, the next character at
every position (Karpathy's char-rnn; Keras' text generation example).
"""

from __future__ import annotations

from typing import Any, Optional

from trainctl.data.lazy import numpy as np
from pydantic import Field

from trainctl import spec
from trainctl.data.file_sources import FileSource
from trainctl.data.readers import expand
from trainctl.data.sources import SourceData, SourceFacts, sources
from trainctl.errors import DataError


@sources.register("char_sequences")
class CharSequences(FileSource):
    """x float32 [N, T] character ids (whole numbers: an ``embedding`` layer takes them),
    y int64 [N, T] the id of the next character at each position; ``num_classes`` is the
    vocabulary size V, ``class_names`` the characters (ids are their sorted order).
    T = ``sequence_length``; windows start every ``stride`` characters (default T: no
    overlap), N = (characters − T − 1) // stride + 1. DataError for text shorter than
    T + 1 characters or not UTF-8."""

    class Config(spec.Config):
        path: str
        sequence_length: int = Field(ge=1, le=65536)
        stride: Optional[int] = Field(None, ge=1)

    @classmethod
    def load(cls, config: "CharSequences.Config", seed: int, base_dir: Any = None) -> SourceData:
        text, vocab = _text(config, base_dir)
        length, stride = config.sequence_length, config.stride or config.sequence_length
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.searchsorted(np.array([ord(c) for c in vocab], dtype=np.uint32), codes)
        starts = np.arange(0, len(text) - length, stride)
        window = starts[:, None] + np.arange(length)[None, :]
        return SourceData(ids[window].astype(np.float32), ids[window + 1].astype(np.int64),
                          num_classes=len(vocab), class_names=tuple(vocab),
                          description=f"char_sequences: {config.path}, {len(text)} characters, "
                                      f"vocabulary {len(vocab)}, windows of {length} every {stride}")


    @classmethod
    def facts(cls, config: "CharSequences.Config", seed: int, base_dir: Any = None) -> SourceFacts:
        """N windows of T ids and the vocabulary, from the text alone (no numpy)."""
        text, vocab = _text(config, base_dir)
        length, stride = config.sequence_length, config.stride or config.sequence_length
        return SourceFacts((len(text) - length - 1) // stride + 1, (length,), (length,),
                           len(vocab), tuple(vocab))


def _text(config: "CharSequences.Config", base_dir: Any) -> tuple[str, list[str]]:
    """The files' text, concatenated, and its sorted distinct characters; DataError for
    text shorter than ``sequence_length + 1`` characters."""
    text = "".join(_read(p) for p in expand(config.path, base_dir))
    if len(text) < config.sequence_length + 1:
        raise DataError(f"{config.path}: {len(text)} characters, fewer than "
                        f"sequence_length + 1 = {config.sequence_length + 1}")
    return text, sorted(set(text))


def _read(path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
