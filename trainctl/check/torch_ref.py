"""The same model, loss and optimizer in plain PyTorch (torch.nn, torch.autograd,
torch.optim), for ``trainctl bench --compare-torch`` only: the reference our engine is
timed against. The package's training never uses torch.autograd; this module is imported
by the benchmark alone.

Translation: dense → ``nn.Linear`` (weight = our kernelᵀ, bias copied) + its activation;
activation, dropout, flatten → their ``nn`` modules; the loss and optimizer of the same
type with the same hyperparameters (torch's defaults otherwise: single-tensor updates).
Raises TrainctlError for a layer, activation, loss or optimizer without a translation.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from trainctl.errors import TrainctlError
from trainctl.nn.losses import EPSILON

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "linear": nn.Identity, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
    "softplus": nn.Softplus, "softmax": lambda: nn.Softmax(dim=-1),
    "log_softmax": lambda: nn.LogSoftmax(dim=-1), "gelu": nn.GELU, "silu": nn.SiLU,
    "elu": nn.ELU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "softsign": nn.Softsign,
    "hard_sigmoid": nn.Hardsigmoid, "log_sigmoid": nn.LogSigmoid,
}


def _activation(name: str | None) -> nn.Module:
    try:
        return ACTIVATIONS[name or "linear"]()
    except KeyError:
        raise TrainctlError(f"--compare-torch: no PyTorch translation of activation "
                            f"{name!r}") from None


def torch_layer(layer) -> nn.Module:
    """One of our built layers as an ``nn.Module`` holding copies of its weights."""
    kind, cfg = layer.registered_name, layer.config
    if kind == "dense":
        linear = nn.Linear(layer.input_shape[-1], cfg.units, bias=cfg.use_bias,
                           device=layer.kernel.device, dtype=layer.kernel.dtype)
        with torch.no_grad():
            linear.weight.copy_(layer.kernel.data.T)
            if cfg.use_bias:
                linear.bias.copy_(layer.bias.data)
        return nn.Sequential(linear, _activation(cfg.activation))
    if kind == "activation":
        return _activation(cfg.activation)
    if kind == "dropout":
        return nn.Dropout(cfg.rate)
    if kind == "flatten":
        return nn.Flatten()
    raise TrainctlError(f"--compare-torch: no PyTorch translation of layer type {kind!r}")


def torch_model(model) -> nn.Sequential:
    """Our Model as an ``nn.Sequential`` of :func:`torch_layer` modules (same weights)."""
    return nn.Sequential(*[torch_layer(layer) for layer in model.layers])


def torch_loss(loss) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``fn(outputs, labels) -> mean loss`` equal to the mean of our per-sample loss
    (probabilities, without ``from_logits``, are normalised and clipped to [1e-7, 1 - 1e-7]
    as trainctl.nn.losses does, Keras' rule)."""
    name, logits = loss.registered_name, bool(getattr(loss.config, "from_logits", False))
    if name in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
        ce = nn.CrossEntropyLoss()

        def log_probs(out):
            if logits:
                return torch.log_softmax(out, dim=-1)
            return torch.log((out / out.sum(dim=-1, keepdim=True)).clamp(EPSILON, 1 - EPSILON))

        def cross_entropy(out, y):
            if y.is_floating_point():  # one-hot or soft labels
                return -(y * log_probs(out)).sum(dim=-1).mean()
            return ce(out, y.long()) if logits else nn.functional.nll_loss(log_probs(out), y.long())

        return cross_entropy
    if name == "binary_crossentropy":
        if logits:
            bce = nn.BCEWithLogitsLoss()
            return lambda out, y: bce(out, y.to(out.dtype).reshape(out.shape))
        bce = nn.BCELoss()
        return lambda out, y: bce(out.clamp(EPSILON, 1 - EPSILON),
                                  y.to(out.dtype).reshape(out.shape))
    if name == "mean_squared_error":
        mse = nn.MSELoss()
        return lambda out, y: mse(out, y.to(out.dtype).reshape(out.shape))
    raise TrainctlError(f"--compare-torch: no PyTorch translation of loss {name!r}")


def torch_optimizer(optimizer, params) -> torch.optim.Optimizer:
    """A ``torch.optim`` optimizer of our optimizer's type with its hyperparameters."""
    name, c = optimizer.registered_name, optimizer.config
    lr = optimizer.learning_rate
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=c.momentum, dampening=c.dampening,
                               nesterov=c.nesterov, weight_decay=c.weight_decay)
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, lr=lr, betas=(c.beta_1, c.beta_2), eps=c.epsilon,
                   weight_decay=c.weight_decay, amsgrad=c.amsgrad)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=c.rho, eps=c.epsilon, momentum=c.momentum,
                                   centered=c.centered, weight_decay=c.weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, lr_decay=c.learning_rate_decay, eps=c.epsilon,
                                   initial_accumulator_value=c.initial_accumulator_value,
                                   weight_decay=c.weight_decay)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, rho=c.rho, eps=c.epsilon,
                                    weight_decay=c.weight_decay)
    raise TrainctlError(f"--compare-torch: no torch.optim translation of optimizer {name!r}")


class TorchStep:
    """One training step of the translated model: zero_grad, forward, loss, backward, step."""

    def __init__(self, setup):
        self.model = torch_model(setup.model)
        self.loss = torch_loss(setup.loss)
        self.optimizer = torch_optimizer(setup.optimizer, self.model.parameters())

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss of the batch with the graph recorded (training mode)."""
        self.model.train()
        return self.loss(self.model(x), y)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.forward(x, y)
        loss.backward()
        self.optimizer.step()
        return loss.detach()
