"""The BatchNorm eps the command assumed, what the state dict says about it, and what a wrong eps costs.

A state dict records a BatchNorm's ``weight``, ``bias``, ``running_mean``, ``running_var`` and
``num_batches_tracked``, never its ``eps``: ``--bn-eps`` (default 1e-5, torch's and ``verify.nn``'s)
is an assumption, and a tuned module loaded into a BatchNorm with another eps computes something
else (relative errors of 1e-3 and more, because the construction's scales cancel one another).
`inferred` says what the file does and does not tell; `alternative` is the eps the torch check is
repeated with, to show how far off the result would be in a module built with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = ["THE_EPS_TRAP", "alternative", "inferred"]

THE_EPS_TRAP = """\
THE EPS TRAP:
  BatchNorm divides by sqrt(running_var + eps), and a state dict does not record eps. The
  certificate and the torch check hold for the eps assumed (--bn-eps, default 1e-5 as in
  torch.nn.BatchNorm1d and every verify.nn frozen network); loaded into a module whose BatchNorms
  use another eps (eps=0.0, say), the same file computes something else, off by 1e-3 relative or
  more. The output prints the eps assumed, what the file says about it, and the torch check
  repeated with another eps, so a mismatch shows before the file is used.
"""


def inferred(state: Mapping[str, Any], prefixes: Sequence[str], assumed: Sequence[float]) -> str:
    """One sentence: the eps stored in ``state`` (a key ``<prefix>.eps``, if a custom module saved one) checked
    against ``assumed`` (one value per BatchNorm ``prefixes``), or what the running statistics do and do not tell."""
    stored = {p: state[f"{p}.eps"] for p in prefixes if f"{p}.eps" in state}
    if stored:
        wrong = [
            f"{p} stores {float(torch.as_tensor(v)):g} but {a:g} was assumed"
            for (p, v), a in zip(stored.items(), assumed, strict=False)
            if float(torch.as_tensor(v)) != a
        ]
        return "MISMATCH: " + "; ".join(wrong) if wrong else f"the stored eps of {len(stored)} BatchNorm(s) agrees"
    fresh = all(
        not torch.any(state[f"{p}.running_mean"]) and bool(torch.all(state[f"{p}.running_var"] == 1))
        for p in prefixes
        if f"{p}.running_mean" in state and f"{p}.running_var" in state
    )
    if fresh:
        return (
            "not recorded; the running statistics are the initial ones (mean 0, variance 1), as verify.nn "
            "frozen_mlp and frozen_like save them, and those use eps 1e-5 on every route"
        )
    return "not recorded, and the running statistics were trained: eps is whatever the saved module was built with"


def alternative(assumed: Sequence[float]) -> float:
    """The other eps a module is commonly built with: 0.0, or torch's 1e-5 when 0 was assumed."""
    return 1e-5 if all(a == 0 for a in assumed) else 0.0
