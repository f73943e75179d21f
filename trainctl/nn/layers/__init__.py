"""Layers, registered by their YAML ``type:`` name in :data:`layers`."""

from trainctl.nn.layers.attention import MultiHeadAttention
from trainctl.nn.layers.base import Layer, LayerConfig, layers
from trainctl.nn.layers.conv import (AveragePooling2D, Conv1D, Conv2D, Conv2DTranspose,
                                     GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D)
from trainctl.nn.layers.core import Activation, Dense, Dropout, Flatten
from trainctl.nn.layers.embedding import Embedding, PositionalEmbedding
from trainctl.nn.layers.merge import Add, Concatenate, Multiply, Subtract
from trainctl.nn.layers.normalization import BatchNormalization, LayerNormalization
from trainctl.nn.layers.recurrent import GRU, LSTM
from trainctl.nn.layers.reshaping import Permute, Reshape

__all__ = ["Layer", "LayerConfig", "layers", "Dense", "Activation", "Dropout", "Flatten",
           "Conv1D", "Conv2D", "Conv2DTranspose", "MaxPooling2D", "AveragePooling2D",
           "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Reshape", "Permute",
           "BatchNormalization", "LayerNormalization", "Embedding", "PositionalEmbedding",
           "Add", "Subtract", "Multiply", "Concatenate", "MultiHeadAttention", "LSTM", "GRU"]
