"""A trained model back from a spec and a checkpoint: what ``eval``, ``predict`` and
``export`` share.

:func:`load_trained` reads the spec (with ``--set`` overrides), finds the checkpoint
(:func:`resolve_checkpoint`: a checkpoint directory, a pointer file, or a run directory's
best / latest checkpoint), refuses a spec whose model (and, with the data, data section)
differs from the one the checkpoint was trained with, builds the model on the device and
loads the weights (the optimizer's moving average of them when training kept one, as
validation saw them). It gives back a :class:`Trained`: the model, the preprocessing raw
features need (stored in the checkpoint: :mod:`trainctl.data.preprocess`), the class
names and what the output means (:attr:`Trained.task`).

``with_data=True`` also prepares the spec's data (the same seeded split the model was
trained on, for ``eval``): :attr:`Trained.setup` is then the whole :class:`Setup`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from trainctl.backend import resolve_device
from trainctl.data.preprocess import Preprocessing
from trainctl.errors import CheckpointError
from trainctl.graph import Model, build_model, spec_doc
from trainctl.io.checkpoint import STATE, WEIGHTS, find_checkpoint, load_checkpoint, read_pointer
from trainctl.nn.losses import losses
from trainctl.optim import averaged_weights, optimizers
from trainctl.spec import Spec, load_spec
from trainctl.train.setup import Setup, prepare, resolved_model

#: Keys that change how training ran but not what a given model computes on given data.
TRAINING_ONLY = ("data.batch_size", "data.shuffle", "data.drop_remainder", "device",
                 "precision")


@dataclass
class Trained:
    """A model with its trained weights and what using it needs.

    ``task``: ``"classes"`` (output [K] scores over K classes), ``"binary"`` (output [1],
    the positive class) or ``"values"`` (regression); ``from_logits``: the output is
    logits (apply softmax / sigmoid for probabilities); ``class_names``: K names (or None
    for regression); ``preprocessing``: raw features → model input; ``checkpoint``: the
    checkpoint directory read; ``state``: its state.json; ``setup``: the prepared run
    (data, loss, metrics) when loaded ``with_data``, else None.
    """

    spec: Spec
    model: Model
    device: torch.device
    preprocessing: Preprocessing
    task: str
    from_logits: bool
    class_names: tuple[str, ...] | None
    checkpoint: Path
    state: dict[str, Any]
    setup: Setup | None = None

    @property
    def training_source(self) -> dict[str, Any] | None:
        """The spec's source entry the model was trained on (``data.source``, else
        ``data.train.source``), a mapping with ``type``; None if there is none."""
        d = self.spec.data
        source = d.source if d.source is not None else (d.train.source if d.train is not None else None)
        return dict(source) if isinstance(source, dict) else None

    def predict(self, x: Any) -> torch.Tensor:
        """Model outputs (float32 [N, ...], on the CPU, evaluation mode, no tape) for raw
        features ``x`` [N, ...]: numbers as float32 (as sources give them; texts stay
        texts), then the preprocessing."""
        import numpy as np

        from trainctl.autodiff import Tensor, no_grad

        raw = np.asarray(x)
        raw = raw if raw.dtype.kind == "U" else raw.astype(np.float32, copy=False)
        batch = torch.as_tensor(np.ascontiguousarray(self.preprocessing(raw))).to(self.device)
        with no_grad():
            out = self.model(Tensor(batch), training=False)
        return out.data.detach().to("cpu")

    def probabilities(self, outputs: torch.Tensor) -> torch.Tensor | None:
        """Class probabilities [N, K] from outputs (binary: [N, 2], negative class first);
        None for regression."""
        if self.task == "values":
            return None
        out = outputs.to(torch.float64)
        if self.task == "binary":
            p = torch.sigmoid(out) if self.from_logits else out
            p = p.reshape(len(p), -1)[:, :1]
            return torch.cat([1 - p, p], dim=1)
        return torch.softmax(out, dim=-1) if self.from_logits else out


def resolve_checkpoint(path: str | os.PathLike, latest: bool = False) -> Path:
    """The checkpoint directory ``path`` names.

    A run directory gives its ``best`` checkpoint (kept when the spec's
    ``checkpoint.monitor`` is set), else its ``final`` one; with ``latest``, the newest
    (the ``latest`` pointer). Anything else goes through
    :func:`~trainctl.io.checkpoint.find_checkpoint` (a checkpoint directory or a pointer
    file). Raises CheckpointError when the run has no such checkpoint (naming the others
    it has), or ``latest`` is given with something that is not a run directory.
    """
    path = Path(path)
    try:
        return _resolve_checkpoint(path, latest)
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {exc.strerror or exc}") from None


def _resolve_checkpoint(path: Path, latest: bool) -> Path:
    ckpts = path / "checkpoints"
    if not ckpts.is_dir():
        if latest:
            raise CheckpointError(f"--latest needs a run directory; {str(path)!r} is not one "
                                  f"(no checkpoints/ folder)")
        return find_checkpoint(path)
    names = ["latest"] if latest else ["best", "final"]
    for name in names:
        target = read_pointer(ckpts / name) if name != "final" else "final"
        if target and (ckpts / target / STATE).is_file() and (ckpts / target / WEIGHTS).is_file():
            return ckpts / target
    have = sorted(p.name for p in ckpts.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not have:
        raise CheckpointError(f"run {str(path)!r} has no checkpoints")
    if latest:
        raise CheckpointError(f"run {str(path)!r} has no latest checkpoint (checkpoints/latest "
                              f"is missing); it has {', '.join(have)}")
    raise CheckpointError(f"run {str(path)!r} has neither a best checkpoint (set the spec's "
                          f"checkpoint.monitor to keep one) nor a final one; it has "
                          f"{', '.join(have)}: pass --latest, or one of them as "
                          f"{str(ckpts)}/NAME")


def load_trained(spec_file: str | os.PathLike, checkpoint: str | os.PathLike,
                 sets: Sequence[str] = (), device: str | None = None, *,
                 latest: bool = False, with_data: bool = False) -> Trained:
    """Spec + checkpoint → :class:`Trained` (see the module docstring).

    Raises SpecErrors (bad spec or override), CheckpointError (no checkpoint, a corrupt
    one, one that does not fit the model, or a spec that describes another model or
    other data: use the run's spec.yaml), DeviceError, and with ``with_data`` DataError.
    """
    spec = load_spec(spec_file, sets)
    ckpt = resolve_checkpoint(checkpoint, latest)
    weights, opt_tensors, state = load_checkpoint(ckpt)
    seed = state.get("seed")
    if isinstance(seed, int) and seed != spec.seed:
        spec = spec.with_overrides(seed=seed)  # the split the model was trained with
    setup = None
    if with_data:
        setup = prepare(spec, device=device)
        model, dev = setup.model, setup.device
        check_same_model(state.get("spec"), setup.resolved, spec_file, ("model", "data"))
    else:
        dev = resolve_device(device if device is not None else spec.device)
        model = build_model(spec, dev)
        check_same_model(state.get("spec"), {"model": resolved_model(spec, model)}, spec_file,
                         ("model",))
    if _uses_ema(spec):  # the moving average, as validation saw it (--set optimizer.use_ema=false: raw)
        weights = averaged_weights(weights, opt_tensors)
    model.load_state_dict(weights)
    loss_cls = losses.get(spec.loss["type"])
    loss_cfg = spec_doc(spec).validate(loss_cls.Config, ("loss",), exclude=("type",))
    from_logits = bool(getattr(loss_cfg, "from_logits", False))
    preprocessing, class_names = _preprocessing(state, ckpt, setup, spec, device)
    return Trained(spec, model, dev, preprocessing, loss_cls.labels, from_logits,
                   class_names if loss_cls.labels != "values" else None, ckpt, state, setup)


def _uses_ema(spec: Spec) -> bool:
    cls = optimizers.get(spec.optimizer["type"])
    exclude = () if "type" in cls.Config.model_fields else ("type",)
    return bool(getattr(spec_doc(spec).validate(cls.Config, ("optimizer",), exclude=exclude),
                        "use_ema", False))


def _preprocessing(state: dict, ckpt: Path, setup: Setup | None, spec: Spec,
                   device: str | None) -> tuple[Preprocessing, tuple[str, ...] | None]:
    """The checkpoint's stored preprocessing and class names; a checkpoint written before
    they were stored gets them from the spec's data (read again)."""
    if "preprocessing" in state:
        names = state.get("class_names")
        return (Preprocessing.from_json(state["preprocessing"], str(ckpt / STATE)),
                tuple(names) if isinstance(names, list) else None)
    if setup is None:
        setup = prepare(spec, device=device)
    return setup.splits.preprocessing, setup.splits.class_names


def check_same_model(trained: dict | None, now: dict, spec_file: str | os.PathLike,
                     sections: Sequence[str] = ("model", "data")) -> None:
    """Refuse a spec whose ``sections`` (of the resolved spec ``now``) differ from the
    checkpoint's resolved spec ``trained``.

    A different model or data pipeline (standardisation, split fractions, source) would
    give numbers that look right but measure something else. Raises CheckpointError
    listing the differences. Checkpoints without a recorded spec (format 1) are not checked.
    """
    from trainctl.train.resume import diff_specs

    if not isinstance(trained, dict):
        return
    trained = {k: v for k, v in trained.items() if k in sections}
    changes = [c for c in diff_specs(trained, now)
               if c.path.startswith(tuple(sections)) and not c.path.startswith(TRAINING_ONLY)]
    if changes:
        shown = _most_telling(changes)
        listed = "; ".join(f"{c.path}: {c.old!r} -> {c.new!r}" for c in shown[:6])
        more = f" (and {len(shown) - 6} more)" if len(shown) > 6 else ""
        what = " and ".join(sections)
        raise CheckpointError(f"{spec_file} does not describe the {what} this checkpoint "
                              f"was trained with: {listed}{more}; use the run's spec.yaml instead")


def _most_telling(changes: list) -> list:
    """``changes`` ordered for a reader: values present on both sides first (``type``
    changes before others), then fields present on one side only (``type`` first). A field
    present on one side only is left out when the other side is null (absent vs default)
    or when it sits under a ``type`` that changed (it belongs to the old or new kind).
    Returns ``changes`` itself when that would leave nothing."""
    from trainctl.train.resume import MISSING

    def is_type(path: str) -> bool:
        return path == "type" or path.endswith(".type")

    retyped = tuple(c.path[:-len("type")] for c in changes if is_type(c.path))
    one_sided = lambda c: c.old == MISSING or c.new == MISSING  # noqa: E731
    kept = [c for c in changes if is_type(c.path) or not one_sided(c) or not (
        None in (c.old, c.new) or c.path.startswith(retyped or ("\0",)))]
    rank = lambda c: (one_sided(c), not is_type(c.path))  # noqa: E731
    return sorted(kept, key=rank) or changes


__all__ = ["Trained", "load_trained", "resolve_checkpoint", "check_same_model", "TRAINING_ONLY"]
