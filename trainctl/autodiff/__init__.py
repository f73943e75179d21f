"""Our automatic differentiation: Tensor, Variable, the tape and the op catalogue.

torch supplies kernels only; torch.autograd is never used (every torch tensor made here
has requires_grad=False).
"""

from trainctl.autodiff import ops
from trainctl.autodiff.custom import custom_gradient
from trainctl.autodiff.engine import enable_grad, gradients, no_grad
from trainctl.autodiff.gradcheck import GradcheckError, gradcheck
from trainctl.autodiff.ops import stop_gradient
from trainctl.autodiff.tape import GradientTape
from trainctl.autodiff.tensor import Tensor, Variable, tensor

__all__ = ["ops", "Tensor", "Variable", "tensor", "GradientTape", "no_grad", "enable_grad",
           "gradients", "stop_gradient", "custom_gradient", "gradcheck", "GradcheckError"]
