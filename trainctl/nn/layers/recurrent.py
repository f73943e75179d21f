"""lstm and gru (Keras' gate order, initialisers and reset_after GRU), unrolled over steps.

Options and shape rules are in :mod:`trainctl.spec.kinds.layers_seq`. Inputs [N, T, d];
the state starts at zero; output the last state [N, units] or every state [N, T, units].
"""

from __future__ import annotations

import torch

from trainctl.autodiff import ops
from trainctl.nn.activations import activations
from trainctl.nn.layers.base import Layer, layers
from trainctl.spec import kinds


class _Recurrent(Layer):
    gates = 4

    def build(self, input_shape, device="cpu"):
        out = self.compute_output_shape(input_shape, self.config)
        cfg, u, g = self.config, self.config.units, self.gates
        self.kernel = self.add_weight("kernel", (input_shape[1], g * u), cfg.kernel_initializer,
                                      device, regularizer=cfg.kernel_regularizer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (u, g * u),
                                                cfg.recurrent_initializer, device,
                                                regularizer=cfg.recurrent_regularizer)
        self.bias = None
        if cfg.use_bias:
            self.bias = self.add_weight("bias", self.bias_shape(), cfg.bias_initializer, device,
                                        regularizer=cfg.bias_regularizer)
        self._act = activations.get(cfg.activation or "linear")
        self._rec = activations.get(cfg.recurrent_activation or "linear")
        return out

    def bias_shape(self) -> tuple[int, ...]:
        return (self.gates * self.config.units,)

    def _finish(self, states):
        return ops.stack(states, axis=1) if self.config.return_sequences else states[-1]


@layers.register("lstm")
class LSTM(_Recurrent, kinds.LSTM):
    """z = x_t W + h U + b split into i, f, c̃, o (Keras' and torch's order);
    c = σ(f)·c + σ(i)·tanh(c̃), h = σ(o)·tanh(c) (σ: recurrent_activation, tanh:
    activation). kernel [d, 4u], recurrent_kernel [u, 4u] (orthogonal), bias [4u] with the
    forget part 1 when unit_forget_bias (Jozefowicz et al. 2015)."""

    def build(self, input_shape, device="cpu"):
        out = super().build(input_shape, device)
        if self.bias is not None and self.config.unit_forget_bias:
            u = self.config.units
            with torch.no_grad():
                self.bias.data[u:2 * u] = 1.0
        return out

    def call(self, x, training=False):
        u = self.config.units
        xw = ops.matmul(x, self.kernel)
        if self.bias is not None:
            xw = xw + self.bias
        h = c = None
        states = []
        for t in range(x.shape[1]):
            z = xw[:, t]
            if h is not None:
                z = z + ops.matmul(h, self.recurrent_kernel)
            i, f, cc, o = (z[:, k * u:(k + 1) * u] for k in range(4))
            cand = self._rec(i) * self._act(cc)
            c = cand if c is None else self._rec(f) * c + cand
            h = self._rec(o) * self._act(c)
            states.append(h)
        return self._finish(states)


@layers.register("gru")
class GRU(_Recurrent, kinds.GRU):
    """Keras' GRU with reset_after (torch's and cuDNN's form): with x_t W + b_x and
    h U + b_h split into z, r, ĥ parts: z = σ(.z + .z), r = σ(.r + .r), ĥ = tanh(xĥ + r ⊙
    hĥ), h = z ⊙ h + (1 - z) ⊙ ĥ. kernel [d, 3u], recurrent_kernel [u, 3u] (orthogonal),
    bias [2, 3u] (input row, recurrent row)."""

    gates = 3

    def bias_shape(self):
        return (2, 3 * self.config.units)

    def call(self, x, training=False):
        u = self.config.units
        xw = ops.matmul(x, self.kernel)
        if self.bias is not None:
            xw = xw + self.bias[0]
        h = None
        states = []
        for t in range(x.shape[1]):
            a = xw[:, t]
            if h is None:  # zero state: h U = 0
                hu = self.bias[1] if self.bias is not None else None
            else:
                hu = ops.matmul(h, self.recurrent_kernel)
                if self.bias is not None:
                    hu = hu + self.bias[1]
            xz, xr, xh = (a[:, k * u:(k + 1) * u] for k in range(3))
            if hu is None:
                z, r, hh = self._rec(xz), None, self._act(xh)
            else:
                hz, hr, hh_ = (hu[..., k * u:(k + 1) * u] for k in range(3))
                z, r = self._rec(xz + hz), self._rec(xr + hr)
                hh = self._act(xh + r * hh_)
            h = (1.0 - z) * hh if h is None else z * h + (1.0 - z) * hh
            states.append(h)
        return self._finish(states)
