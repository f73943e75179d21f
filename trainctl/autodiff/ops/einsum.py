"""einsum: Einstein summation over any number of operands (numpy's and torch's notation).

The public :func:`einsum` resolves the implicit output and ``...`` into explicit letters;
the registered op ``einsum`` then sees only equations like ``ij,jk->ik``. Its VJP for
operand k is again an einsum: the upstream gradient contracted with the other operands
onto k's subscripts, broadcast along subscripts only k has, and placed on the diagonal
(times identity matrices) where k repeats a subscript (``ii->i``, traces).
"""

from __future__ import annotations

import string

import torch

from trainctl.autodiff.ops.core import _as_tensors, defop, fmt_shape
from trainctl.backend.precision import back_to_float32, low_precision
from trainctl.autodiff.ops.movement import broadcast_to, reshape
from trainctl.autodiff.tensor import Tensor
from trainctl.errors import ShapeError

LETTERS = string.ascii_letters


def _split(equation: str) -> tuple[list[str], str | None]:
    eq = equation.replace(" ", "")
    if eq.count("->") > 1:
        raise ValueError(f"einsum: equation {equation!r} has more than one '->'")
    lhs, _, rhs = eq.partition("->")
    return lhs.split(","), (rhs if "->" in eq else None)


def _check(equation: str, terms: list[str], out: str, shapes) -> dict[str, int]:
    """Size of every subscript; raises on any mismatch, naming the shapes."""
    if len(terms) != len(shapes):
        raise ShapeError(f"einsum: equation {equation!r} has {len(terms)} operand(s) but "
                         f"{len(shapes)} were given")
    for c in "".join(terms) + out:
        if c not in LETTERS:
            raise ValueError(f"einsum: invalid subscript {c!r} in {equation!r} "
                             f"(use letters and '...')")
    sizes: dict[str, int] = {}
    for i, (term, shape) in enumerate(zip(terms, shapes)):
        if len(term) != len(shape):
            raise ShapeError(f"einsum: subscripts {term!r} of operand {i} do not match its shape "
                             f"{fmt_shape(shape)} in {equation!r}")
        for c, d in zip(term, shape):
            if sizes.setdefault(c, d) != d:
                shown = ", ".join(fmt_shape(s) for s in shapes)
                raise ShapeError(f"einsum: subscript {c!r} has sizes {sizes[c]} and {d} in "
                                 f"{equation!r} for shapes {shown}")
    for c in out:
        if c not in sizes or out.count(c) > 1:
            raise ValueError(f"einsum: output subscript {c!r} of {equation!r} must appear once, "
                             f"and in an operand")
    return sizes


@defop("einsum")
def _einsum(*xs, equation):
    """Einstein summation for an explicit equation of letters (``ij,jk->ik``)."""
    terms, out = _split(equation)
    _check(equation, terms, out, [x.shape for x in xs])
    return back_to_float32(torch.einsum(equation, *low_precision(*xs)), xs)  # precision policy


@_einsum.defvjp
def _einsum_vjp(g, out, *xs, equation):
    terms, out_sub = _split(equation)
    sizes = _check(equation, terms, out_sub, [x.shape for x in xs])
    return tuple(_operand_grad(g, xs, terms, out_sub, k, sizes) if xs[k].tracked else None
                 for k in range(len(xs)))


def _operand_grad(g, xs, terms, out_sub, k, sizes):
    term = terms[k]
    unique = "".join(dict.fromkeys(term))
    others = set(out_sub).union(*(terms[j] for j in range(len(xs)) if j != k))
    kept = "".join(c for c in unique if c in others)
    rest = [j for j in range(len(xs)) if j != k]
    h = _einsum(g, *[xs[j] for j in rest],
                equation=",".join([out_sub] + [terms[j] for j in rest]) + "->" + kept)
    if kept != unique:  # subscripts only k has: the gradient is constant along them
        h = reshape(h, tuple(sizes[c] if c in kept else 1 for c in unique))
        h = broadcast_to(h, tuple(sizes[c] for c in unique))
    if unique == term:
        return h
    fresh = iter(c for c in LETTERS if c not in sizes)
    placed, eyes = "", []  # a repeated subscript: put h on the diagonal
    for c in term:
        if c in placed:
            f = next(fresh)
            eyes.append(c + f)
            placed += f
        else:
            placed += c
    eye = [Tensor(torch.eye(sizes[e[0]], dtype=g.dtype, device=g.device)) for e in eyes]
    return _einsum(h, *eye, equation=",".join([unique] + eyes) + "->" + placed)


def _expand_ellipsis(terms, out, shapes, equation):
    """Replace ``...`` by letters (right-aligned, numpy broadcasting); an operand's size-1
    axis that broadcasts against a larger one gets a letter of its own (summed away)."""
    spare = [c for c in LETTERS if c not in set("".join(terms) + out)]
    ells = []
    for term, shape in zip(terms, shapes):
        if term.count("...") > 1:
            raise ValueError(f"einsum: more than one '...' in {term!r} of {equation!r}")
        n = len(shape) - (len(term) - 3)
        if "..." in term and n < 0:
            raise ShapeError(f"einsum: subscripts {term!r} do not match shape {fmt_shape(shape)} "
                             f"in {equation!r}")
        start = term.find("...")
        ells.append(tuple(shape[start:start + n]) if "..." in term else None)
    width = max((len(e) for e in ells if e is not None), default=0)
    full = [1] * width
    for e in filter(None, ells):
        for q, d in enumerate(e, start=width - len(e)):
            if d != 1 and full[q] not in (1, d):
                raise ShapeError(f"einsum: '...' axes do not broadcast in {equation!r} for "
                                 f"shapes {', '.join(fmt_shape(s) for s in shapes)}")
            full[q] = max(full[q], d)
    shared = [spare.pop(0) for _ in range(width)]
    result = []
    for term, e in zip(terms, ells):
        if e is not None:
            term = term.replace("...", "".join(
                shared[q] if d == full[q] else spare.pop(0)
                for q, d in enumerate(e, start=width - len(e))))
        result.append(term)
    return result, "".join(shared)


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation (numpy.einsum / torch.einsum notation): ``einsum('ij,jk->ik', a, b)``.

    Without ``->`` the output is the subscripts that appear once, in alphabetical order;
    ``...`` stands for broadcast leading axes. Repeated subscripts in one operand take a
    diagonal (``ii->i``, ``ii->`` a trace). Differentiable in every operand; the gradient
    is an einsum too. Raises ShapeError naming the equation and shapes when operands do
    not fit it, ValueError for a malformed equation.
    """
    tensors = _as_tensors("einsum", operands)
    terms, out = _split(equation)
    if len(terms) != len(tensors):
        raise ShapeError(f"einsum: equation {equation!r} has {len(terms)} operand(s) but "
                         f"{len(tensors)} were given")
    if out is None:
        letters = "".join(t.replace("...", "") for t in terms)
        out = ("..." if any("..." in t for t in terms) else "") + "".join(
            sorted(c for c in set(letters) if letters.count(c) == 1))
    if any("..." in t for t in terms + [out]):
        terms, ell = _expand_ellipsis(terms, out, [t.shape for t in tensors], equation)
        out = out.replace("...", ell)
    return _einsum(*tensors, equation=",".join(terms) + "->" + out)
