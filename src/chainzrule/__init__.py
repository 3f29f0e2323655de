"""ChainzRule: learnable polynomial activations with analytic layer-Jacobian regularization (DREG).

The public API, re-exported here:

>>> import torch, chainzrule
>>> model = chainzrule.ChainzRuleMLP(784, [256, 256], 10)
>>> x, y = torch.rand(32, 784), torch.randint(0, 10, (32,))
>>> logits, jsq = model(x, return_jacobian=True)        # jsq: per-example ||S||_F², [32, 2]
>>> loss = torch.nn.functional.cross_entropy(logits, y) + 3e-3 * chainzrule.dreg_penalty(jsq)
>>> loss.backward()
"""

from .activations import GELU, ReLU, SiLU, Tanh, make_activation
from .diagnostics import (global_grad_norm, jacobian_norms, layer_report, lipschitz_bound, peak_gradient_volatility,
                          sensitivity_summary, tau_input, tau_train)
from . import functional
from .dreg import DregTerms, LambdaSchedule, collect, dreg_penalty, lambda_schedule
from .errors import ChainzRuleError, ConfigError, DataError
from .layers import HiddenLayer, hidden_layers
from .conv import ConvHiddenLayer
from . import cnn  # chainzrule.cnn.CNN after a plain `import chainzrule`
from .models import ChainzRuleMLP, MLP, count_parameters, match_width, num_parameters
from .poly import PolynomialActivation, coefficient_parameters, parameter_groups
from .regularizers import Regularizer, make_regularizer

__version__ = "0.2.0"

__all__ = [
    "ChainzRuleError", "ChainzRuleMLP", "ConfigError", "ConvHiddenLayer", "DataError", "DregTerms", "GELU",
    "HiddenLayer",
    "LambdaSchedule", "MLP", "PolynomialActivation", "ReLU", "SiLU", "Tanh", "coefficient_parameters", "collect",
    "cnn", "count_parameters", "dreg_penalty", "functional", "hidden_layers", "lambda_schedule",
    "make_activation", "match_width", "num_parameters", "parameter_groups",
    "Regularizer", "make_regularizer", "global_grad_norm", "jacobian_norms", "layer_report", "lipschitz_bound",
    "peak_gradient_volatility", "sensitivity_summary", "tau_input", "tau_train",
]
