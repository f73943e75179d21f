"""Layers, registered by their YAML ``type:`` name in :data:`layers`."""

from trainctl.nn.layers.base import Layer, LayerConfig, layers
from trainctl.nn.layers.core import Activation, Dense, Dropout, Flatten

__all__ = ["Layer", "LayerConfig", "layers", "Dense", "Activation", "Dropout", "Flatten"]
