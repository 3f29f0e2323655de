"""ChainzRule: learnable polynomial activations with analytic layer-Jacobian regularization (DREG).

The public API, re-exported here:

>>> import torch, chainzrule
>>> model = chainzrule.ChainzRuleMLP(784, [256, 256], 10)
>>> x, y = torch.rand(32, 784), torch.randint(0, 10, (32,))
>>> logits = model(x)
>>> loss = torch.nn.functional.cross_entropy(logits, y) + 3e-3 * chainzrule.dreg_penalty(model)
>>> loss.backward()
"""

from .activations import GELU, ReLU, SiLU, Tanh, make_activation
from .diagnostics import (global_grad_norm, jacobian_norms, layer_report, lipschitz_bound, peak_gradient_volatility,
                          sensitivity_summary, tau_input, tau_train)
from .dreg import LambdaSchedule, dreg_penalty, dreg_terms, lambda_schedule
from .errors import ChainzRuleError, ConfigError, DataError
from .layers import HiddenLayer, hidden_layers, jacobian_tracking, set_jacobian_tracking
from .models import ChainzRuleMLP, MLP, count_parameters, match_width, num_parameters
from .poly import PolynomialActivation
from .regularizers import Regularizer, make_regularizer

__version__ = "0.1.0"

__all__ = [
    "ChainzRuleError", "ChainzRuleMLP", "ConfigError", "DataError", "GELU", "HiddenLayer",
    "LambdaSchedule", "MLP", "PolynomialActivation", "ReLU", "SiLU", "Tanh", "count_parameters",
    "dreg_penalty", "dreg_terms", "hidden_layers", "jacobian_tracking", "lambda_schedule",
    "make_activation", "match_width", "num_parameters", "set_jacobian_tracking",
    "Regularizer", "make_regularizer", "global_grad_norm", "jacobian_norms", "layer_report", "lipschitz_bound",
    "peak_gradient_volatility", "sensitivity_summary", "tau_input", "tau_train",
]
