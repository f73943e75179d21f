"""What a spec can name, without torch: each layer, loss and optimizer type's options
(``Config``) and rules (layer shapes, what a loss needs), and the plain names of
activations, initializers and metrics.

The torch classes in ``trainctl.nn`` and ``trainctl.optim`` derive from these kinds
(``class Dense(Layer, kinds.Dense)``) and register under the same names, so each type's
options and shape rule are written once, here, and ``trainctl validate`` checks a whole
spec without importing torch (docs/architecture.md, "Kinds").
"""

from trainctl.spec.kinds.layers import (Activation, Dense, Dropout, Flatten, LayerConfig,
                                        LayerKind, fmt_shape, layer_kinds)
from trainctl.spec.kinds.layers_conv import (AveragePooling2D, Conv1D, Conv2D, Conv2DTranspose,
                                             GlobalAveragePooling2D, GlobalMaxPooling2D,
                                             MaxPooling2D)
from trainctl.spec.kinds.layers_merge import Add, Concatenate, Multiply, Subtract
from trainctl.spec.kinds.layers_reshape import (BatchNormalization, LayerNormalization, Permute,
                                                Reshape)
from trainctl.spec.kinds.layers_seq import GRU, LSTM, Embedding, MultiHeadAttention, PositionalEmbedding
from trainctl.spec.kinds.losses import (BinaryCrossentropy, CategoricalCrossentropy, LossConfig,
                                        LossKind, MeanSquaredError, RegressionConfig,
                                        SparseCategoricalCrossentropy, loss_kinds)
from trainctl.spec.kinds.names import (activation_names, check_activation, check_initializer,
                                       initializer_names, metric_names)
from trainctl.spec.kinds.optimizers import (SGD, Adadelta, Adagrad, Adam, AdamW, Lion,
                                            OptimizerConfig, OptimizerKind, ParamGroup, RMSprop,
                                            optimizer_kinds)

__all__ = [
    "AveragePooling2D", "Conv1D", "Conv2D", "Conv2DTranspose", "GlobalAveragePooling2D",
    "GlobalMaxPooling2D", "MaxPooling2D", "Add", "Concatenate", "Multiply", "Subtract",
    "BatchNormalization", "LayerNormalization", "Permute", "Reshape", "GRU", "LSTM",
    "Embedding", "MultiHeadAttention", "PositionalEmbedding",
    "Activation", "Dense", "Dropout", "Flatten", "LayerConfig", "LayerKind", "fmt_shape",
    "layer_kinds", "BinaryCrossentropy", "CategoricalCrossentropy", "LossConfig", "LossKind",
    "MeanSquaredError", "RegressionConfig", "SparseCategoricalCrossentropy", "loss_kinds",
    "activation_names", "check_activation", "check_initializer", "initializer_names",
    "metric_names", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Lion",
    "OptimizerConfig", "OptimizerKind", "ParamGroup", "optimizer_kinds",
]
