"""Input data: sources (named data sets), a tf.data-like Dataset, and train/val/test splits.

Imports numpy, scikit-learn and pydantic only; elements are numpy arrays and the training
loop converts batches to tensors.
"""

from trainctl.data.dataset import (AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY,
                                   Dataset, transformations)
from trainctl.data import steps as _steps  # noqa: F401  (registers the steps)
from trainctl.data.structure import TensorSpec
from trainctl.data.sources import SourceData, load_source, sources
from trainctl.data.splits import Splits, Stats, build_splits

__all__ = [
    "AUTOTUNE", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY", "Dataset", "TensorSpec",
    "transformations", "SourceData", "load_source", "sources", "Splits", "Stats", "build_splits",
]
