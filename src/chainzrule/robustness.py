"""Robustness measurement: corruptions generated in code, and FGSM / PGD attacks.

Our stand-in for CIFAR-10-C (not reachable offline) and for the adversarial evaluation of the
papers (GUIDE §3, "Corruption accuracy" and "Adversarial accuracy"). This module re-exports the
public names of the two modules that implement it:

- :mod:`chainzrule.corruptions` — :data:`CORRUPTIONS` (nine corruptions at severities 1..5),
  :data:`SEVERITY_PARAMS`, :func:`corrupt`, :func:`corruption_accuracy`;
- :mod:`chainzrule.attacks` — :func:`fgsm`, :func:`pgd`, :func:`adversarial_accuracy` and
  :class:`NoInputGradient`.

Their shared argument checks are in :mod:`chainzrule.robustness_base`; the step-size-free APGD
attack is in :mod:`chainzrule.apgd`.

>>> import torch
>>> x = torch.rand(4, 1 * 8 * 8)
>>> corrupt(x, "rotate", 3, (1, 8, 8)).shape
torch.Size([4, 64])
"""

from __future__ import annotations

from chainzrule.attacks import NoInputGradient, adversarial_accuracy, fgsm, pgd
from chainzrule.corruptions import CORRUPTIONS, SEVERITIES, SEVERITY_PARAMS, corrupt, corruption_accuracy

__all__ = [
    "NoInputGradient",
    "CORRUPTIONS",
    "SEVERITY_PARAMS",
    "SEVERITIES",
    "corrupt",
    "corruption_accuracy",
    "fgsm",
    "pgd",
    "adversarial_accuracy",
]
