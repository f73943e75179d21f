"""Engine behaviour: error messages, no torch.autograd, Tensor.backward, GradientTape
semantics (persistence, watch, unconnected sources, recording scope, structure), dtypes,
and attributes passed positionally."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trainctl as tc
from trainctl.errors import DTypeError, ShapeError, TrainctlError

F64 = torch.float64


def f64(values):
    return tc.tensor(np.asarray(values, dtype=np.float64), dtype="float64")


# ---- error messages name the op and both shapes ---------------------------------------
def zeros(*shape, dtype="float32"):
    return tc.tensor(np.zeros(shape), dtype=dtype)


@pytest.mark.parametrize("call, message", [
    (lambda: zeros(3, 4) @ zeros(5, 6), "matmul: cannot multiply [3,4] by [5,6]"),
    (lambda: tc.ops.matmul(zeros(3, 4), zeros(5, 6)), "matmul: cannot multiply [3,4] by [5,6]"),
    (lambda: tc.ops.matmul_nd(zeros(3, 4), zeros(5, 6)), "matmul: cannot multiply [3,4] by [5,6]"),
    (lambda: zeros(3) @ zeros(4), "matmul: cannot multiply [3] by [4]"),
    (lambda: zeros(2, 3) @ zeros(4), "matmul: cannot multiply [2,3] by [4]"),
    (lambda: zeros(2) @ zeros(3, 2), "matmul: cannot multiply [2] by [3,2]"),
    (lambda: zeros(2, 3) + zeros(4), "add: cannot broadcast [2,3] with [4]"),
    (lambda: tc.ops.add(zeros(2, 3), zeros(3, 2)), "add: cannot broadcast [2,3] with [3,2]"),
    (lambda: zeros(2, 3) - zeros(4, 1, 2), "sub: cannot broadcast [2,3] with [4,1,2]"),
    (lambda: zeros(5) * zeros(4), "mul: cannot broadcast [5] with [4]"),
    (lambda: zeros(5) / zeros(2, 4), "div: cannot broadcast [5] with [2,4]"),
    (lambda: tc.ops.maximum(zeros(2), zeros(3)), "maximum: cannot broadcast [2] with [3]"),
    (lambda: tc.ops.reshape(zeros(2, 3), (4, 2)), "reshape: cannot reshape [2,3] to [4,2]"),
    (lambda: tc.ops.broadcast_to(zeros(2, 3), (3, 3)),
     "broadcast_to: cannot broadcast [2,3] to [3,3]"),
    (lambda: tc.ops.broadcast_to(zeros(1), (-1,)), "broadcast_to: cannot broadcast [1] to [-1]"),
    (lambda: tc.ops.reshape(zeros(2, 3), (-2, -3)), "reshape: cannot reshape [2,3] to [-2,-3]"),
    (lambda: zeros(2, 3, 4) + zeros(0, 1, 4), "add: cannot broadcast [2,3,4] with [0,1,4]"),
    (lambda: tc.ops.log_softmax_backward(zeros(2, 3), zeros(3, 2)),
     "log_softmax_backward: gradient [2,3] and output [3,2] differ"),
])
def test_shape_errors_name_the_op_and_both_shapes(call, message):
    with pytest.raises(ShapeError) as info:
        call()
    assert str(info.value) == message
    assert isinstance(info.value, TrainctlError) and isinstance(info.value, ValueError)


def test_assign_error_names_both_shapes():
    v = tc.Variable(np.zeros((2, 3)), name="w")
    with pytest.raises(ShapeError, match=r"^assign: cannot assign shape \[3,2\] to variable 'w' "
                                         r"of shape \[2,3\]$"):
        v.assign(np.zeros((3, 2)))


def test_batched_matmul_error_names_both_shapes():
    with pytest.raises(ShapeError, match=r"^matmul: cannot multiply \[2,3,4\] by \[3,4,5\]"):
        zeros(2, 3, 4) @ zeros(3, 4, 5)


def test_where_broadcast_error_names_all_shapes():
    with pytest.raises(ShapeError, match=r"^where: cannot broadcast \[2\] with \[3\] with \[4\]$"):
        tc.ops.where(tc.tensor([True, False]), zeros(3), zeros(4))


# ---- torch.autograd is never used -----------------------------------------------------
def _mlp_tensors(create_graph=False):
    """A small MLP; returns (loss, every Tensor on its tape, gradients)."""
    gen = torch.Generator().manual_seed(0)
    x = tc.tensor(torch.randn(4, 3, dtype=F64, generator=gen, requires_grad=True))
    w1 = tc.Variable(torch.randn(3, 5, dtype=F64, generator=gen, requires_grad=True))
    b1 = tc.Variable(np.zeros(5), dtype="float64")
    w2 = tc.Variable(torch.randn(5, 2, dtype=F64, generator=gen, requires_grad=True))
    b2 = tc.Variable(torch.nn.Parameter(torch.zeros(2, dtype=F64)))
    scale = torch.ones(5, dtype=F64, requires_grad=True)  # a raw torch operand
    labels = tc.tensor([0, 1, 1, 0])
    with tc.GradientTape(persistent=True) as outer:
        with tc.GradientTape() as tape:
            h = tc.ops.relu(x @ w1 + b1) * scale
            logits = tc.ops.matmul(h, w2) + b2
            logp = tc.ops.log_softmax(logits)
            picked = tc.ops.take_along_axis(logp, tc.ops.reshape(labels, (-1, 1)), axis=1)
            loss = tc.ops.mean(-picked) + 0.1 * tc.ops.sum(tc.ops.square(w1))
        grads = tape.gradient(loss, [w1, b1, w2, b2])
        gnorm = tc.ops.sum(tc.ops.stack([tc.ops.sum(g * g) for g in grads]))
    second = outer.gradient(gnorm, [w1, w2])
    seen, stack, tensors = set(), [loss, gnorm, *grads, *second], []
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        tensors.append(t)
        if t._node is not None:
            stack.extend(t._node.inputs)
    return loss, tensors, [*grads, *second]


def test_no_torch_tensor_made_by_the_engine_requires_grad():
    with torch.enable_grad():
        loss, tensors, grads = _mlp_tensors()
    assert len(tensors) > 30
    offenders = [(t._node.op.name if t._node else "leaf", t.shape) for t in tensors
                 if t.data.requires_grad]
    assert offenders == []
    assert all(not g.data.requires_grad for g in grads)
    assert all(t.data.grad_fn is None for t in tensors)


def _mlp_numbers():
    gen = torch.Generator().manual_seed(1)
    x = tc.tensor(torch.randn(6, 4, generator=gen))
    params = [tc.Variable(torch.randn(4, 8, generator=gen) * 0.5), tc.Variable(np.zeros(8)),
              tc.Variable(torch.randn(8, 3, generator=gen) * 0.5), tc.Variable(np.zeros(3))]
    y = tc.tensor([0, 2, 1, 1, 0, 2])
    w1, b1, w2, b2 = params
    logits = tc.ops.tanh(x @ w1 + b1) @ w2 + b2
    loss = tc.ops.mean(-tc.ops.take_along_axis(tc.ops.log_softmax(logits),
                                                tc.ops.reshape(y, (-1, 1)), axis=1))
    loss.backward()
    return [loss.numpy()] + [p.grad.numpy() for p in params], (x, params, y)


def test_mlp_identical_with_torch_grad_disabled_globally():
    expected, (x, params, y) = _mlp_numbers()
    previous = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        assert not torch.is_grad_enabled()
        actual, _ = _mlp_numbers()
    finally:
        torch.set_grad_enabled(previous)
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)

    # and the numbers are right: the same MLP in torch.autograd (oracle only)
    tp = [torch.tensor(p.numpy(), requires_grad=True) for p in params]
    logits = torch.tanh(x.data @ tp[0] + tp[1]) @ tp[2] + tp[3]
    tloss = torch.nn.functional.cross_entropy(logits, y.data)
    tgrads = torch.autograd.grad(tloss, tp)
    np.testing.assert_allclose(expected[0], tloss.item(), rtol=1e-6)
    for g, tg in zip(expected[1:], tgrads):
        np.testing.assert_allclose(g, tg.numpy(), rtol=1e-5, atol=1e-6)


# ---- Tensor.backward ------------------------------------------------------------------
def test_backward_accumulates_into_grad():
    v = tc.Variable([1.0, -2.0, 3.0], dtype="float64")
    c = f64([2.0, 0.5, -1.0])
    tc.ops.sum(v * v * c).backward()
    np.testing.assert_array_equal(v.grad.numpy(), [4.0, -2.0, -6.0])  # 2 v c
    tc.ops.sum(v * c).backward()
    np.testing.assert_array_equal(v.grad.numpy(), [6.0, -1.5, -7.0])  # + c
    v.grad = None
    tc.ops.sum(v * c).backward()
    np.testing.assert_array_equal(v.grad.numpy(), [2.0, 0.5, -1.0])


def test_backward_non_scalar_target_needs_gradient():
    v = tc.Variable([[1.0, 2.0], [3.0, 4.0]], dtype="float64")
    y = v * 3.0
    with pytest.raises(ValueError, match=r"backward: target of shape \[2,2\] is not a scalar"):
        y.backward()
    assert v.grad is None
    y.backward(gradient=f64([[1.0, 0.0], [2.0, -1.0]]))
    np.testing.assert_array_equal(v.grad.numpy(), [[3.0, 0.0], [6.0, -3.0]])
    with pytest.raises(ShapeError, match=r"output gradient of shape \[2\] does not match "
                                         r"target shape \[2,2\]"):
        y.backward(gradient=f64([1.0, 2.0]))


def test_backward_on_a_one_element_non_scalar_and_untrainable_variables():
    v = tc.Variable([[2.0]], dtype="float64")
    frozen = tc.Variable([[5.0]], dtype="float64", trainable=False)
    (v * v * frozen).backward()
    assert v.grad.shape == (1, 1) and v.grad.item() == 20.0
    assert frozen.grad is None


# ---- GradientTape ---------------------------------------------------------------------
def test_non_persistent_tape_raises_on_second_gradient_call():
    v = tc.Variable(3.0, dtype="float64")
    with tc.GradientTape() as tape:
        y = v * v
    assert tape.gradient(y, v).item() == 6.0
    with pytest.raises(RuntimeError, match="only be called once"):
        tape.gradient(y, v)


def test_persistent_tape_allows_several_gradient_calls():
    v = tc.Variable(3.0, dtype="float64")
    with tc.GradientTape(persistent=True) as tape:
        y = v * v
        z = y * v
    assert tape.gradient(y, v).item() == 6.0
    assert tape.gradient(z, v).item() == 27.0
    assert tape.gradient(z, y).item() == 3.0  # an intermediate source
    assert tape.gradient(y, v).item() == 6.0


def test_tape_errors():
    with pytest.raises(RuntimeError, match="never entered"):
        tc.GradientTape().gradient(f64(1.0), f64(1.0))
    v = tc.Variable(1.0)
    with tc.GradientTape() as tape:
        y = v * 2.0
    with pytest.raises(ValueError, match="unconnected_gradients"):
        tape.gradient(y, v, unconnected_gradients="zeros")


def test_watch_on_a_constant():
    x = f64([1.0, 2.0])
    unwatched = f64([3.0, 4.0])
    with tc.GradientTape() as tape:
        tape.watch(x)
        y = tc.ops.sum(x * x * unwatched)
    gx, gu = tape.gradient(y, [x, unwatched])
    np.testing.assert_array_equal(gx.numpy(), [6.0, 16.0])  # 2 x u
    # TensorFlow: a source that is an input of a recorded op gets its gradient even
    # unwatched (the op was recorded because x is watched)
    np.testing.assert_array_equal(gu.numpy(), [1.0, 4.0])  # x^2
    other = f64([5.0, 6.0])
    with tc.GradientTape() as tape:
        tape.watch(x)
        y = tc.ops.sum(x * 2.0) + tc.ops.sum(other * other)  # ops on `other` are not recorded
    assert tape.gradient(y, other) is None


def test_untrainable_variable_needs_watch():
    v = tc.Variable(2.0, dtype="float64", trainable=False)
    with tc.GradientTape() as tape:
        y = v * v
    assert tape.gradient(y, v) is None
    with tc.GradientTape() as tape:
        tape.watch(v)
        y = v * v
    assert tape.gradient(y, v).item() == 4.0


def test_unconnected_sources_give_none_or_zeros():
    v = tc.Variable([1.0, 2.0], dtype="float64")
    unused = tc.Variable([[1.0, 2.0, 3.0]], dtype="float64")
    with tc.GradientTape(persistent=True) as tape:
        y = tc.ops.sum(v * 2.0)
    gv, gu = tape.gradient(y, [v, unused])
    np.testing.assert_array_equal(gv.numpy(), [2.0, 2.0])
    assert gu is None
    gv, gu = tape.gradient(y, [v, unused], unconnected_gradients="zero")
    assert gu.shape == (1, 3) and gu.dtype == F64
    np.testing.assert_array_equal(gu.numpy(), np.zeros((1, 3)))


def test_ops_outside_the_tape_block_are_not_followed():
    v = tc.Variable(2.0, dtype="float64")
    before = v * 3.0
    with tc.GradientTape(persistent=True) as tape:
        inside = before * v  # d/dv through `before` is not on this tape
    after = inside * v
    assert tape.gradient(inside, v).item() == 6.0  # only `* v` inside: before = 6
    assert tape.gradient(after, v) is None
    assert tape.gradient(inside, before).item() == 2.0


def test_no_grad_records_nothing():
    v = tc.Variable([1.0, 2.0], dtype="float64")
    with tc.GradientTape() as tape:
        with tc.no_grad():
            y = v * 2.0
            with tc.enable_grad():
                z = v * 3.0
        w = tc.ops.sum(y * v)
    assert y._node is None and not y.tracked
    assert z._node is not None
    np.testing.assert_array_equal(tape.gradient(w, v).numpy(), [2.0, 4.0])  # y is a constant


def test_gradients_keep_the_structure_of_the_sources():
    a = tc.Variable(1.0, dtype="float64")
    b = tc.Variable([2.0, 3.0], dtype="float64")
    with tc.GradientTape(persistent=True) as tape:
        y = a * tc.ops.sum(b * b)
    g = tape.gradient(y, {"b": b, "a": a})
    assert isinstance(g, dict) and list(g) == ["b", "a"]
    np.testing.assert_array_equal(g["b"].numpy(), [4.0, 6.0])
    assert g["a"].item() == 13.0
    t = tape.gradient(y, (a, b))
    assert isinstance(t, tuple) and len(t) == 2 and t[0].item() == 13.0
    lst = tape.gradient(y, [b])
    assert isinstance(lst, list) and len(lst) == 1
    single = tape.gradient(y, b)
    assert isinstance(single, tc.Tensor) and single.shape == (2,)


def test_output_gradients_weight_a_non_scalar_target():
    v = tc.Variable([1.0, 2.0], dtype="float64")
    with tc.GradientTape() as tape:
        y = v * v
    g = tape.gradient(y, v, output_gradients=f64([10.0, -1.0]))
    np.testing.assert_array_equal(g.numpy(), [20.0, -4.0])


def test_non_scalar_target_without_output_gradients_is_summed():
    v = tc.Variable([1.0, 2.0], dtype="float64")
    with tc.GradientTape() as tape:
        y = v * v
    np.testing.assert_array_equal(tape.gradient(y, v).numpy(), [2.0, 4.0])


# ---- dtypes ---------------------------------------------------------------------------
@pytest.mark.parametrize("call, op", [
    (lambda a, b: a + b, "add"),
    (lambda a, b: b * a, "mul"),
    (lambda a, b: tc.ops.maximum(a, b), "maximum"),
    (lambda a, b: a @ tc.ops.reshape(b, (3, 1)), "matmul"),
    (lambda a, b: tc.ops.concat(a, b), "concat"),
    (lambda a, b: tc.ops.where(tc.tensor([True, False, True]), a, b), "where"),
    (lambda a, b: tc.ops.sigmoid_cross_entropy_with_logits(a, b), "sigmoid_cross_entropy"),
])
def test_float32_with_float64_promotes_as_torch(call, op):
    # torch's promotion rules: the result is float64; each gradient comes back in its
    # input's dtype, with the values of the same computation done wholly in float64
    a = tc.Variable([1.0, 2.0, 3.0], dtype="float32")
    b = tc.Variable([0.5, -2.0, 4.0], dtype="float64")
    with tc.GradientTape() as tape:
        y = call(a, b)
    assert y.dtype == F64, op
    ga, gb = tape.gradient(y, [a, b])
    assert ga.dtype == torch.float32 and gb.dtype == F64
    a64 = tc.Variable([1.0, 2.0, 3.0], dtype="float64")
    with tc.GradientTape() as tape:
        y64 = call(a64, b)
    ga64, gb64 = tape.gradient(y64, [a64, b])
    np.testing.assert_array_equal(y.numpy(), y64.numpy())
    np.testing.assert_allclose(ga.numpy(), ga64.numpy(), rtol=1e-7)
    np.testing.assert_array_equal(gb.numpy(), gb64.numpy())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_python_scalars_take_the_tensors_dtype(dtype):
    x = tc.Variable([1.0, 2.0], dtype=dtype)
    with tc.GradientTape() as tape:
        ys = [x + 1.0, 1.0 - x, 2 * x, x / 4, 3.0 / x, x ** 2, 2.0 ** x, x * True,
              tc.ops.maximum(x, 1.5), tc.ops.where(tc.tensor([True, False]), x, 0.0)]
        total = tc.ops.sum(tc.ops.stack([tc.ops.sum(y) for y in ys]))
    assert [y.dtype for y in ys] == [x.dtype] * len(ys)
    g = tape.gradient(total, x)
    assert g.dtype == x.dtype
    xv = np.array([1.0, 2.0])
    expected = (1 - 1 + 2 + 0.25 - 3.0 / xv ** 2 + 2 * xv + np.log(2) * 2.0 ** xv + 1
                + np.array([0.0, 1.0]) + np.array([1.0, 0.0]))
    np.testing.assert_allclose(g.numpy(), expected, rtol=1e-6 if dtype == "float32" else 1e-12)


def test_int_tensor_with_int_scalar_stays_int():
    i = tc.tensor([1, 2, 3])
    assert (i + 1).dtype == torch.int64 and (i * 2).tolist() == [2, 4, 6]


def test_cast_gradient_returns_to_the_source_dtype():
    x = tc.tensor([1.0, 2.0], dtype="float32")
    with tc.GradientTape() as tape:
        tape.watch(x)
        y = tc.ops.sum(tc.ops.cast(x, "float64") * f64([0.5, 3.0]))
    g = tape.gradient(y, x)
    assert y.dtype == F64 and g.dtype == torch.float32
    np.testing.assert_array_equal(g.numpy(), [0.5, 3.0])


# ---- attributes passed positionally, indexing, snapshots ------------------------------
def test_attributes_may_be_passed_positionally():
    x = f64([[1.0, 5.0, 2.0], [4.0, 0.0, 3.0]])
    np.testing.assert_array_equal(tc.ops.sum(x, 1).numpy(), [8.0, 7.0])
    np.testing.assert_array_equal(tc.ops.sum(x, 0, True).numpy(), [[5.0, 5.0, 5.0]])
    np.testing.assert_array_equal(x.max(0).numpy(), [4.0, 5.0, 3.0])
    np.testing.assert_array_equal(x.argmax(1).numpy(), [1, 0])
    assert tc.ops.cast(x, torch.float32).dtype == torch.float32
    assert x.cast("float32").dtype == torch.float32
    assert tc.ops.reshape(x, (3, 2)).shape == (3, 2)
    np.testing.assert_array_equal(
        tc.ops.take_along_axis(x, tc.tensor([[2], [0]]), 1).numpy(), [[2.0], [4.0]])
    with pytest.raises(TypeError, match="multiple values for 'axis'"):
        tc.ops.sum(x, 1, axis=0)
    with pytest.raises(TypeError, match="positional"):
        tc.ops.sum(x, 1, True, 2)


def test_indexing_with_ints_slices_none_and_ellipsis():
    xv = np.arange(12.0).reshape(3, 4)
    x = tc.Variable(xv, dtype="float64")
    np.testing.assert_array_equal(x[1].numpy(), xv[1])
    np.testing.assert_array_equal(x[1:, ::2].numpy(), xv[1:, ::2])
    np.testing.assert_array_equal(x[:, -1].numpy(), xv[:, -1])
    assert x[..., None].shape == (3, 4, 1)
    with tc.GradientTape() as tape:
        y = tc.ops.sum(x[1:, ::2]) + 2.0 * x[0, 3]
    expected = np.zeros((3, 4))
    expected[1:, ::2] = 1.0
    expected[0, 3] = 2.0
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), expected)


def test_tensor_of_a_variable_is_a_snapshot():
    v = tc.Variable([1.0, 2.0], dtype="float64")
    t = tc.tensor(v)
    v.assign_add([10.0, 10.0])
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(v.numpy(), [11.0, 12.0])


def test_variable_and_tensor_do_not_alias_caller_memory():
    arr = np.array([1.0, 2.0])
    src = torch.tensor([3.0, 4.0], dtype=F64)
    t, v = tc.tensor(arr, dtype="float64"), tc.Variable(src)
    arr[0] = 99.0
    src[0] = 99.0
    assert t.tolist() == [1.0, 2.0] and v.tolist() == [3.0, 4.0]


def test_iterating_a_tensor_yields_rows_and_gradients_flow():
    x = tc.Variable([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype="float64")
    with tc.GradientTape() as tape:
        rows = list(x)
        y = rows[0] * rows[2]
    assert [r.tolist() for r in rows] == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [[5.0, 6.0], [0.0, 0.0], [1.0, 2.0]])
    with pytest.raises(TypeError, match="0-d"):
        list(f64(1.0))


def test_expand_dims_rejects_an_out_of_range_axis():
    x = zeros(2, 3)
    assert tc.ops.expand_dims(x, 2).shape == (2, 3, 1)
    assert tc.ops.expand_dims(x, -3).shape == (1, 2, 3)
    for axis in (3, -4):
        with pytest.raises(ShapeError, match=f"expand_dims: axis {axis} is out of range"):
            tc.ops.expand_dims(x, axis)


def test_concat_takes_a_list_as_tensorflow_and_numpy_write_it():
    a = tc.tensor([[1.0, 2.0]])
    b = tc.tensor([[3.0, 4.0]])
    assert tc.ops.concat([a, b], axis=0).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert tc.ops.concat((a, b), axis=1).tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert tc.ops.concat(a, b, axis=0).shape == (2, 2)


def test_a_ragged_nested_list_is_a_shape_error():
    from trainctl.errors import ShapeError

    with pytest.raises(ShapeError, match="unequal lengths"):
        tc.tensor([[1, 2], [3]])
