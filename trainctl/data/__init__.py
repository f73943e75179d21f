"""Input data: a tf.data-like Dataset, file readers, named sources and transforms, the
spec's data section, train/val/test splits.

Imports numpy (on first use: :mod:`trainctl.data.lazy`), scikit-learn, Pillow (image
files) and pydantic only; elements are numpy arrays and the training loop converts batches to tensors (``prefetch_to_device`` alone
imports torch, lazily, when it iterates).
"""

from trainctl.data.dataset import (AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY,
                                   Dataset, transformations)
from trainctl.data import steps as _steps  # noqa: F401  (registers the steps)
from trainctl.data import ordering as _ordering  # noqa: F401
from trainctl.data import parallel as _parallel  # noqa: F401
from trainctl.data import interleave as _interleave  # noqa: F401
from trainctl.data import cache as _cache  # noqa: F401
from trainctl.data import device as _device  # noqa: F401
from trainctl.data.iterator import DatasetIterator
from trainctl.data.parallel import ElementTransform
from trainctl.data.structure import TensorSpec
from trainctl.data.sources import SourceData, load_source, sources
from trainctl.data import file_sources as _file_sources  # noqa: F401  (registers file sources)
from trainctl.data import text_sources as _text_sources  # noqa: F401  (char_sequences)
from trainctl.data.splits import Splits, Stats, build_splits
from trainctl.data.transforms import Transform, transforms
from trainctl.data.pipeline import DataPlan, plan_data

__all__ = [
    "AUTOTUNE", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY", "Dataset", "DatasetIterator",
    "ElementTransform", "TensorSpec", "transformations", "SourceData", "load_source", "sources",
    "Splits", "Stats", "build_splits", "Transform", "transforms", "DataPlan", "plan_data",
]
