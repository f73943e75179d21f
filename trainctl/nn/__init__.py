"""Layers, activations, initialisers, losses and metrics, each in its registry."""

from trainctl.nn.activations import activations
from trainctl.nn.initializers import initializers
from trainctl.nn.layers import Layer, layers
from trainctl.nn.losses import Loss, losses
from trainctl.nn.metrics import Metric, build_metric, metrics

__all__ = ["activations", "initializers", "Layer", "layers", "Loss", "losses", "Metric",
           "metrics", "build_metric"]
