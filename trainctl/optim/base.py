"""`Optimizer`: the base class of optimizers, their registry and `build_optimizer`.

The shape follows torch.optim and Keras: hyperparameters are validated once in a pydantic
``Config`` (Keras names: ``learning_rate``, ``beta_1``, ...); per-parameter state (slot
tensors such as ``m`` and ``v``) is created lazily on a parameter's first update; the
update itself is a small function per optimizer working on torch tensors in place.

Around the update, every optimizer applies the shared options of
:class:`~trainctl.spec.kinds.optimizers.OptimizerConfig`, in this order: gradient
accumulation (:mod:`.accumulation`), clipping (:mod:`.clipping`), the update with each
parameter's own learning rate and weight decay (groups, ``weight_decay_exclude``), then
the moving average of the weights (:mod:`.ema`).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any, Mapping, Sequence

import torch

from trainctl.autodiff import Tensor, Variable
from trainctl.errors import CheckpointError, ShapeError
from trainctl.optim import accumulation, ema
from trainctl.optim.accumulation import GradientAccumulator
from trainctl.optim.clipping import clip_gradients
from trainctl.optim.ema import WeightAverage
from trainctl.optim.slots import dump_slots, load_slots
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
        learning_rate: the base rate used by the next update: a float a schedule may set
            between steps (finite and >= 0, else ValueError); it starts at
            ``config.learning_rate``. A parameter group's rate follows it in proportion
            (group rate × learning_rate / config.learning_rate).
        iterations: the number of updates applied so far (with gradient accumulation,
            one per N calls of :meth:`step`).
        state: ``{param name: {slot name: torch.Tensor}}``, filled lazily; each slot has
            the shape, dtype and device of its parameter.
        steps: ``{param name: int}``, the updates each parameter has received (a parameter
            whose gradient was None in a step is not updated and not counted, as in torch).
        accumulator: the :class:`GradientAccumulator` (None without accumulation).
        average: the :class:`WeightAverage` of the weights (None without ``use_ema``).
    """

    def __init__(self, params: Sequence[Variable], config: OptimizerConfig | Mapping | None = None,
                 **overrides: Any):
        """``config`` is a ``Config`` instance or a mapping; keyword ``overrides`` are merged
        into it. Raises ValueError for an empty or duplicate-named parameter list, for a
        ``weight_decay_exclude`` or group pattern that matches no parameter, and
        pydantic.ValidationError (a ValueError) for unknown or invalid hyperparameters."""
        self.params: list[Variable] = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        names = [p.name for p in self.params]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"{type(self).__name__}: parameter names must be unique; "
                             f"repeated: {', '.join(dup)}")
        self._configure(self._make_config(config, overrides))
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

    def _configure(self, config: OptimizerConfig) -> None:
        """Set ``config`` and what derives from it: each parameter's (rate scale, weight
        decay), the accumulator and the weight average (both empty)."""
        problems = config.pattern_problems([p.name for p in self.params])
        if problems:
            raise ValueError("; ".join(".".join(map(str, path)) + ": " + message
                                       for path, message in problems))
        options = [config.param_options(p.name) for p in self.params]
        self.config = config
        self._options = [(lr / config.learning_rate, wd) for lr, wd in options]
        n = config.gradient_accumulation_steps
        self.accumulator = GradientAccumulator(n) if n > 1 else None
        self.average = WeightAverage(config.ema_momentum) if config.use_ema else None

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

    def param_options(self, param: Variable | str) -> tuple[float, float]:
        """``(learning_rate, weight_decay)`` the next update uses for ``param`` (a
        Variable or its name): its group's, scaled by the current base rate."""
        name = param if isinstance(param, str) else param.name
        i = next(i for i, p in enumerate(self.params) if p.name == name)
        scale, wd = self._options[i]
        return self.learning_rate * scale, wd

    def get_config(self) -> dict[str, Any]:
        """The hyperparameters as a JSON-able dict (``type(self)(params, **cfg)`` rebuilds)."""
        return self.config.model_dump()

    # ---- to be defined by subclasses -------------------------------------------------
    @classmethod
    def slot_names(cls, config: OptimizerConfig) -> tuple[str, ...]:
        """The names of the state tensors each updated parameter has under ``config``."""
        return ()

    def update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor],
               step: int, *, lr: float, weight_decay: float) -> None:
        """Update ``param`` in place; ``step`` counts this update (1 on the first one);
        ``state`` is this parameter's slot dict, empty on the first update; ``lr`` and
        ``weight_decay`` are this parameter's (group, exclusion and schedule applied)."""
        raise NotImplementedError

    # ---- slots -----------------------------------------------------------------------
    def get_slot(self, param: Variable | str, name: str) -> torch.Tensor:
        """The slot ``name`` of ``param`` (a Variable or its name), e.g. ``"m"``, or the
        shadow weight ``"ema"``. Raises KeyError if it does not exist (yet)."""
        key = param if isinstance(param, str) else param.name
        if name == ema.SLOT and self.average is not None and key in self.average.shadow:
            return self.average.shadow[key]
        try:
            return self.state[key][name]
        except KeyError:
            raise KeyError(f"parameter {key!r} has no slot {name!r}") from None

    # ---- stepping ------------------------------------------------------------------
    @torch.no_grad()
    def step(self, grads: Sequence[Tensor | torch.Tensor | None] | None = None,
             weight: float = 1.0) -> bool:
        """Give one gradient per parameter; apply an update unless accumulating.

        ``grads`` (one per parameter, in order; a trainctl Tensor or torch tensor of the
        parameter's shape, or None to skip that parameter) defaults to each ``p.grad``.
        ``weight`` (a number > 0, e.g. the batch size) weighs these gradients in the mean
        of an accumulation; it is ignored without one. Returns True when an update was
        applied (always, without accumulation). Raises ValueError if ``grads`` has the
        wrong length and ShapeError if a gradient's shape differs from its parameter's.
        No host-device synchronisation happens.
        """
        grads = self._check(grads)
        if self.accumulator is None:
            self._apply(grads)
            return True
        self.accumulator.add([p.name for p in self.params], grads, weight)
        return self.flush() if self.accumulator.ready else False

    def flush(self) -> bool:
        """Apply an update from the gradients accumulated so far, if any (the trainer
        calls it at the end of each epoch); True if one was applied."""
        if self.accumulator is None or not self.accumulator.pending:
            return False
        with torch.no_grad():
            self._apply(self.accumulator.take([p.name for p in self.params]))
        return True

    def _check(self, grads) -> list[torch.Tensor | None]:
        if grads is None:
            grads = [p.grad for p in self.params]
        elif len(grads) != len(self.params):
            raise ValueError(f"{type(self).__name__}.step: got {len(grads)} gradients "
                             f"for {len(self.params)} parameters")
        out = []
        for p, g in zip(self.params, grads):
            g = g.data if isinstance(g, Tensor) else g
            if g is not None and tuple(g.shape) != tuple(p.data.shape):
                raise ShapeError(f"{type(self).__name__}.step: gradient of shape "
                                 f"{list(g.shape)} for parameter {p.name!r} of shape "
                                 f"{list(p.data.shape)}")
            out.append(g)
        return out

    def _apply(self, grads: list[torch.Tensor | None]) -> None:
        c = self.config
        grads = clip_gradients(grads, clipnorm=c.clipnorm, global_clipnorm=c.global_clipnorm,
                               clipvalue=c.clipvalue)
        for p, g, (scale, wd) in zip(self.params, grads, self._options):
            if g is None:
                continue
            n = self.steps.get(p.name, 0) + 1
            self.update(p.data, g, self.state.setdefault(p.name, {}), n,
                        lr=self.learning_rate * scale, weight_decay=wd)
            self.steps[p.name] = n
        self.iterations += 1
        if self.average is not None:
            self.average.update(self.params)

    def zero_grad(self) -> None:
        """Clear the gradients: ``p.grad = None`` for every parameter."""
        for p in self.params:
            p.grad = None

    # ---- the moving average ---------------------------------------------------------
    def ema_weights(self):
        """A context in which the parameters hold their moving averages (``use_ema``,
        after at least one update); otherwise it changes nothing. ``evaluate`` uses it."""
        if self.average is None:
            return nullcontext()
        return self.average.swapped(self.params)

    # ---- checkpoints ---------------------------------------------------------------
    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The optimizer state as ``(tensors, meta)``.

        ``tensors`` maps ``"<param name>/<slot>"`` (e.g. ``"dense/kernel/m"``) to a detached
        copy of the slot; the shadow weights of ``use_ema`` are the slots ``ema`` and the
        gradients accumulated so far the slots ``grad_accum``. ``meta`` is JSON-able:
        ``format``, ``optimizer`` (registered name), ``iterations``, ``learning_rate``
        (current), ``steps`` (per parameter), ``config`` and, with accumulation,
        ``accumulation`` (``count`` of gradients and their total ``weight``).
        """
        tensors = dump_slots(self.state)
        if self.average is not None:
            tensors.update(dump_slots({n: {ema.SLOT: t} for n, t in self.average.shadow.items()}))
        if self.accumulator is not None:
            tensors.update(dump_slots({n: {accumulation.SLOT: t}
                                       for n, t in self.accumulator.sums.items()}))
        meta = {"format": STATE_FORMAT, "optimizer": self.registered_name,
                "iterations": self.iterations, "learning_rate": self.learning_rate,
                "steps": dict(self.steps), "config": self.get_config()}
        if self.accumulator is not None:
            meta["accumulation"] = self.accumulator.meta()
        return tensors, meta

    def load_state_dict(self, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` exactly, so the next steps are bit-identical.

        As torch.optim does, the saved hyperparameters (``config``, ``learning_rate``)
        replace the current ones. Slots are copied to their parameter's device. Shadow
        weights or accumulated gradients the saved config does not use are dropped; a
        config with ``use_ema`` but no shadows starts its average at the next update.
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
            acc_meta = dict(meta.get("accumulation") or {})
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{who}: bad optimizer state metadata: {e}") from None
        slots = load_slots(self.params, tensors, steps, self.slot_names(config),
                           extra=(ema.SLOT, accumulation.SLOT))
        try:
            self._configure(config)  # changes nothing when it raises
        except ValueError as e:
            raise CheckpointError(f"{who}: the saved optimizer config does not fit these "
                                  f"parameters: {e}") from None
        self.learning_rate, self.iterations = lr, iterations
        self.state, self.steps = slots.main, steps
        if self.average is not None:
            self.average.load(slots.extra[ema.SLOT])
        if self.accumulator is not None:
            self.accumulator.load(slots.extra[accumulation.SLOT], acc_meta)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.params)} params, {self.config!r})"


def build_optimizer(name: str, params: Sequence[Variable], **config: Any) -> Optimizer:
    """Build the optimizer registered as ``name`` (e.g. ``"adam"``) over ``params``.

    Raises UnknownNameError for an unknown name (with the closest names) and
    pydantic.ValidationError for unknown or invalid hyperparameters.
    """
    return optimizers.get(name)(params, **config)
