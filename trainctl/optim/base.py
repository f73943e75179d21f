"""`Optimizer`: the base class of optimizers, their registry and `build_optimizer`.

The shape follows torch.optim and Keras: hyperparameters are validated once in a pydantic
``Config`` (Keras names: ``learning_rate``, ``beta_1``, ...); per-parameter state (slot
tensors such as ``m`` and ``v``) is created lazily on a parameter's first update; the
update itself is a small function per optimizer working on torch tensors in place.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch

from trainctl.autodiff import Tensor, Variable
from trainctl.errors import CheckpointError, ShapeError
from trainctl.registry import Registry
from trainctl.spec.kinds.optimizers import OptimizerConfig, OptimizerKind

optimizers: Registry[type["Optimizer"]] = Registry("optimizer")

STATE_FORMAT = 1  # version of the state_dict layout; bump and migrate in load_state_dict


class Optimizer(OptimizerKind):
    """Updates a list of Variables in place from their gradients.

    Subclasses also derive from their kind in :mod:`trainctl.spec.kinds.optimizers`,
    which gives their ``Config`` (so ``trainctl validate`` checks hyperparameters without
    torch), implement :meth:`slot_names` and :meth:`update`, and are registered in
    :data:`optimizers` under the kind's name.

    Attributes:
        params: the Variables updated, in order; their names must be unique.
        config: the validated hyperparameters as given (``config.learning_rate`` is the
            base rate).
        learning_rate: the rate used by the next :meth:`step`: a float a schedule may set
            between steps (finite and >= 0, else ValueError); it starts at
            ``config.learning_rate``.
        iterations: the number of :meth:`step` calls made so far (Keras' counter).
        state: ``{param name: {slot name: torch.Tensor}}``, filled lazily; each slot has
            the shape, dtype and device of its parameter.
        steps: ``{param name: int}``, the updates each parameter has received (a parameter
            whose gradient was None in a step is not updated and not counted, as in torch).
    """

    def __init__(self, params: Sequence[Variable], config: OptimizerConfig | Mapping | None = None,
                 **overrides: Any):
        """``config`` is a ``Config`` instance or a mapping; keyword ``overrides`` are merged
        into it. Raises ValueError for an empty or duplicate-named parameter list and
        pydantic.ValidationError (a ValueError) for unknown or invalid hyperparameters."""
        self.params: list[Variable] = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        names = [p.name for p in self.params]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"{type(self).__name__}: parameter names must be unique; "
                             f"repeated: {', '.join(dup)}")
        self.config = self._make_config(config, overrides)
        self.learning_rate = self.config.learning_rate
        self.iterations = 0
        self.state: dict[str, dict[str, torch.Tensor]] = {}
        self.steps: dict[str, int] = {}

    @classmethod
    def _make_config(cls, config, overrides: Mapping) -> OptimizerConfig:
        if isinstance(config, OptimizerConfig):
            if not isinstance(config, cls.Config):
                raise TypeError(f"{cls.__name__} needs a {cls.__name__}.Config, "
                                f"got {type(config).__qualname__}")
            config = config.model_dump()
        return cls.Config.model_validate({**dict(config or {}), **overrides})

    # ---- hyperparameters ---------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"learning_rate must be a finite number >= 0, got {value}")
        self._learning_rate = value

    def get_config(self) -> dict[str, Any]:
        """The hyperparameters as a JSON-able dict (``type(self)(params, **cfg)`` rebuilds)."""
        return self.config.model_dump()

    # ---- to be defined by subclasses -------------------------------------------------
    @classmethod
    def slot_names(cls, config: OptimizerConfig) -> tuple[str, ...]:
        """The names of the state tensors each updated parameter has under ``config``."""
        return ()

    def update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor],
               step: int) -> None:
        """Update ``param`` in place; ``step`` counts this update (1 on the first one);
        ``state`` is this parameter's slot dict, empty on the first update."""
        raise NotImplementedError

    # ---- stepping ------------------------------------------------------------------
    @torch.no_grad()
    def step(self, grads: Sequence[Tensor | torch.Tensor | None] | None = None) -> None:
        """Apply one update to every parameter that has a gradient, then count the step.

        ``grads`` (one per parameter, in order; a trainctl Tensor or torch tensor of the
        parameter's shape, or None to skip that parameter) defaults to each ``p.grad``.
        Raises ValueError if ``grads`` has the wrong length and ShapeError if a gradient's
        shape differs from its parameter's. No host-device synchronisation happens.
        """
        if grads is None:
            grads = [p.grad for p in self.params]
        elif len(grads) != len(self.params):
            raise ValueError(f"{type(self).__name__}.step: got {len(grads)} gradients "
                             f"for {len(self.params)} parameters")
        for p, g in zip(self.params, grads):
            if g is None:
                continue
            g = g.data if isinstance(g, Tensor) else g
            if tuple(g.shape) != tuple(p.data.shape):
                raise ShapeError(f"{type(self).__name__}.step: gradient of shape "
                                 f"{list(g.shape)} for parameter {p.name!r} of shape "
                                 f"{list(p.data.shape)}")
            n = self.steps.get(p.name, 0) + 1
            self.update(p.data, g, self.state.setdefault(p.name, {}), n)
            self.steps[p.name] = n
        self.iterations += 1

    def zero_grad(self) -> None:
        """Clear the gradients: ``p.grad = None`` for every parameter."""
        for p in self.params:
            p.grad = None

    # ---- checkpoints ---------------------------------------------------------------
    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The optimizer state as ``(tensors, meta)``.

        ``tensors`` maps ``"<param name>/<slot>"`` (e.g. ``"dense/kernel/m"``) to a detached
        copy of the slot; ``meta`` is JSON-able: ``format``, ``optimizer`` (registered
        name), ``iterations``, ``learning_rate`` (current), ``steps`` (per parameter) and
        ``config``.
        """
        tensors = {f"{name}/{slot}": t.detach().clone()
                   for name, slots in self.state.items() for slot, t in slots.items()}
        meta = {"format": STATE_FORMAT, "optimizer": self.registered_name,
                "iterations": self.iterations, "learning_rate": self.learning_rate,
                "steps": dict(self.steps), "config": self.get_config()}
        return tensors, meta

    def load_state_dict(self, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` exactly, so the next steps are bit-identical.

        As torch.optim does, the saved hyperparameters (``config``, ``learning_rate``)
        replace the current ones. Slots are copied to their parameter's device.
        Raises CheckpointError naming the problem: another optimizer or format, a
        parameter unknown to this optimizer, a missing, unexpected, or mismatched
        (shape or dtype) slot tensor. On error, the optimizer is left unchanged.
        """
        who = type(self).__name__
        if meta.get("format") != STATE_FORMAT:
            raise CheckpointError(f"{who}: unsupported optimizer state format "
                                  f"{meta.get('format')!r} (expected {STATE_FORMAT})")
        if meta.get("optimizer") != self.registered_name:
            raise CheckpointError(f"optimizer state is for {meta.get('optimizer')!r}, "
                                  f"not {self.registered_name!r}")
        try:
            config = self._make_config(meta["config"], {})
            iterations, lr = int(meta["iterations"]), float(meta["learning_rate"])
            steps = {str(k): int(v) for k, v in meta["steps"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{who}: bad optimizer state metadata: {e}") from None
        state = self._load_slots(tensors, steps, self.slot_names(config))
        self.config, self.learning_rate, self.iterations = config, lr, iterations
        self.state, self.steps = state, steps

    def _load_slots(self, tensors: Mapping[str, torch.Tensor], steps: Mapping[str, int],
                    slot_names: tuple[str, ...]) -> dict[str, dict[str, torch.Tensor]]:
        by_name = {p.name: p for p in self.params}
        unknown = sorted(set(steps) - set(by_name))
        if unknown:
            raise CheckpointError(f"optimizer state has parameters this model lacks: "
                                  f"{', '.join(unknown)}")
        state: dict[str, dict[str, torch.Tensor]] = {}
        for name in steps:
            p, slots = by_name[name], {}
            for slot in slot_names:
                key = f"{name}/{slot}"
                if key not in tensors:
                    raise CheckpointError(f"optimizer state lacks slot {key!r}")
                t = tensors[key]
                if tuple(t.shape) != p.shape or t.dtype != p.dtype:
                    raise CheckpointError(
                        f"optimizer slot {key!r} is {_describe(t)}, but parameter {name!r} "
                        f"is {_describe(p.data)}")
                slots[slot] = t.detach().to(device=p.device, copy=True)
            state[name] = slots
        expected = {f"{n}/{s}" for n in steps for s in slot_names}
        extra = sorted(set(tensors) - expected)
        if extra:
            raise CheckpointError(f"optimizer state has unexpected slots: {', '.join(extra)}")
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.params)} params, {self.config!r})"


def _describe(t: torch.Tensor) -> str:
    return f"{str(t.dtype).replace('torch.', '')}{list(t.shape)}"


def build_optimizer(name: str, params: Sequence[Variable], **config: Any) -> Optimizer:
    """Build the optimizer registered as ``name`` (e.g. ``"adam"``) over ``params``.

    Raises UnknownNameError for an unknown name (with the closest names) and
    pydantic.ValidationError for unknown or invalid hyperparameters.
    """
    return optimizers.get(name)(params, **config)
