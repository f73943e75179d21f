"""The same model, loss and optimizer in plain PyTorch (torch.nn, torch.autograd,
torch.optim), for ``trainctl bench --compare-torch`` only: the reference our engine is
timed against. The package's training never uses torch.autograd; this module is imported
by the benchmark alone.

Translation: each layer by :mod:`trainctl.check.torch_layers` (every registered type, our
initial weights copied in); a chain (``model.layers``) becomes an ``nn.Sequential``, a DAG
(``model.nodes``) a :class:`TorchGraph` calling one module per distinct layer (a node with
``shared_with`` calls its owner's module, so the weights are shared); the loss and
optimizer of the same type with the same hyperparameters (torch's defaults otherwise:
single-tensor updates). Raises TrainctlError for a part without a translation.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from trainctl.check.torch_layers import Translation, translate_layer
from trainctl.errors import TrainctlError
from trainctl.graph import GraphModel
from trainctl.nn.losses import EPSILON


class TorchGraph(nn.Module):
    """A GraphModel's DAG: ``forward(x)`` takes what GraphModel takes (one tensor: the
    single input, or the feature array each input slices by ``columns``; a dict by input
    name; a tuple in ``model.inputs`` order) and returns the output node's value."""

    def __init__(self, model, modules: dict[int, int], translated: list[nn.Module]):
        super().__init__()
        self.plan = model.plan
        self.layers = nn.ModuleList(translated)
        self.calls = [(n.name, modules[id(model.node_layers[n.name])], list(n.inputs),
                       n.multi_input) for n in model.plan.nodes]

    def feed(self, x) -> dict[str, torch.Tensor]:
        inputs = self.plan.inputs
        if isinstance(x, dict):
            return {i.name: x[i.name] for i in inputs}
        if isinstance(x, (tuple, list)):
            return {i.name: v for i, v in zip(inputs, x)}
        if inputs[0].columns is not None:
            return {i.name: x[..., i.columns[0]:i.columns[1]] for i in inputs}
        return {inputs[0].name: x}

    def forward(self, x):
        values = self.feed(x)
        for name, index, inputs, multi in self.calls:
            args = [values[s] for s in inputs]
            values[name] = self.layers[index](args if multi else args[0])
        return values[self.plan.outputs[0]]


def torch_model(model) -> Translation:
    """Our Model (chain) or GraphModel (DAG) in torch (see the module docstring), with the
    pairs of every weight (each distinct layer translated once)."""
    translations = [translate_layer(layer) for layer in model.layers]
    pairs = [p for t in translations for p in t.pairs]
    if not isinstance(model, GraphModel):
        return Translation(nn.Sequential(*[t.module for t in translations]), pairs)
    modules = {id(layer): i for i, layer in enumerate(model.layers)}
    return Translation(TorchGraph(model, modules, [t.module for t in translations]), pairs)


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


def _unsupported_options(c) -> list[str]:
    """Optimizer options the reference does not reproduce (TorchStep refuses them)."""
    return [name for name, given in (
        ("groups", bool(c.groups)), ("weight_decay_exclude", bool(c.weight_decay_exclude)),
        ("gradient_accumulation_steps", c.gradient_accumulation_steps != 1),
        ("use_ema", c.use_ema)) if given]


class TorchStep:
    """One training step of the translated model: zero_grad, forward, loss (plus the
    layers' L1/L2 penalties, as Trainer.train_step), backward, the spec's gradient clipping
    (``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``), step. Raises TrainctlError
    for optimizer groups, weight_decay_exclude, gradient accumulation and EMA."""

    def __init__(self, setup):
        c = setup.optimizer.config
        unsupported = _unsupported_options(c)
        if unsupported:
            raise TrainctlError(f"--compare-torch: the PyTorch reference does not reproduce "
                                f"optimizer option(s) {', '.join(unsupported)}")
        self.translation = torch_model(setup.model)
        self.model = self.translation.module.to(setup.device)
        self.loss = torch_loss(setup.loss)
        self.optimizer = torch_optimizer(setup.optimizer, self.model.parameters())
        params = {id(v): ps for v, ps, _ in self.translation.pairs}
        self.penalties = [(reg, params[id(v)]) for layer in setup.model.layers
                          for v, reg in layer.regularized]
        self.clip = c

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss of the batch with the graph recorded (training mode), penalties included."""
        self.model.train()
        loss = self.loss(self.model(x), y)
        for reg, params in self.penalties:
            for p in params:
                if reg.l1:
                    loss = loss + reg.l1 * p.abs().sum()
                if reg.l2:
                    loss = loss + reg.l2 * (p * p).sum()
        return loss

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.forward(x, y)
        loss.backward()
        c, params = self.clip, [p for p in self.model.parameters() if p.grad is not None]
        if c.global_clipnorm:
            nn.utils.clip_grad_norm_(params, c.global_clipnorm)
        elif c.clipnorm:
            for p in params:
                nn.utils.clip_grad_norm_([p], c.clipnorm)
        elif c.clipvalue:
            nn.utils.clip_grad_value_(params, c.clipvalue)
        self.optimizer.step()
        return loss.detach()
