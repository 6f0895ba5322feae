"""PyTorch modules in, tuned BatchNorm out (needs torch; ``pip install verify[torch]``).

::

    from verify.nn import frozen_mlp, from_module, load_norm_params, fit_norm_layers, norm_only

    frozen = frozen_mlp([4, 16, 4, 12, 3], seed=0)   # Linear -> BatchNorm1d -> ReLU ..., last Linear -> BatchNorm1d
    target = torch.nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))
    result = fit_norm_layers(frozen, target, verify.Ball(1.0))   # solves, loads BN weight/bias in place
    frozen.eval()(x)  ≈  target(x)                               # torch's own BatchNorm1d forward

``nn.Sequential`` stacks of ``Linear``, ``BatchNorm1d`` and ``ReLU`` are read layer by layer (``Dropout``
and ``Identity`` in eval mode are skipped as the identity); other modules (classes, ResNets) as torch.fx
graphs (docs/design.md §10). Anything else is refused with a
`ValueError` naming the layer, its index and why: LayerNorm's statistics depend on the input
(``LN(c·h) = LN(h)``, docs/design.md §7), other activations break the ReLU identities the construction
uses, attention is not a per-neuron affine map. Convolutional targets (``Conv1d``/``Conv2d``, pooling,
``Flatten``, a Linear head, a target BatchNorm folded) go through `frozen_like` (docs/design.md §9), which
builds the frozen network, and `fit_norm_layers`, which reads such modules with `frozen_like.conv_networks`.

Modules: `grammar` (the one table of which layer may follow which), `modules` (torch modules read
into `verify.FrozenNetwork` / `verify.TargetNetwork`), `mlp` (random stacks to start from), `fit`
(solve and load γ, β), `training` (the BN-only training baseline), `state_dict` (saved state dicts
read, copied with new γ, β, written), `rebuild` (a saved ``nn.Sequential`` rebuilt by the grammar) and
`export` (`to_module`: a `verify.FrozenNetwork` and its reconstruction back to torch), `residual`
(`frozen_residual_mlp`: the frozen residual network of Case 2, docs/design.md §8) and `frozen_like`
(frozen CNNs and MLPs shaped for a target). Models written as classes are read as graphs
(docs/design.md §10): `graph` (trace, classify, refuse), `graph_idioms` (slicing, padding, shape
expressions and the other parameter-free maps of public model code; the check at the domain's shape, every
node's value), `graph_lower` (interval bounds through a graph, and the fitted model lowered into the core graph
for its rigorous bound), `graph_fit` (node-by-node reconstruction),
`graph_match` (the frozen graph matched node by node), `graph_result` (a graph's pairs, `NodeFit`, and its
`verify.Certificate`; `GraphReconstruction`, kept for one release, is `verify.Reconstruction`) and
`graph_frozen` (`frozen_graph`, which `frozen_like` uses for them: the target's graph with each layer replaced
by its pair).
"""

from __future__ import annotations

from verify.nn.export import to_module
from verify.nn.fit import fit_norm_layers, load_norm_params
from verify.nn.frozen_like import frozen_like
from verify.nn.graph_fit import GraphReconstruction, NodeFit
from verify.nn.graph_frozen import frozen_graph
from verify.nn.mlp import frozen_mlp, target_mlp
from verify.nn.modules import from_module, target_from_module
from verify.nn.residual import FrozenResidualMLP, frozen_residual_mlp
from verify.nn.training import TrainingCurve, norm_only, train_norm_only

__all__ = [
    "FrozenResidualMLP",
    "GraphReconstruction",
    "NodeFit",
    "TrainingCurve",
    "fit_norm_layers",
    "from_module",
    "frozen_graph",
    "frozen_like",
    "frozen_mlp",
    "frozen_residual_mlp",
    "load_norm_params",
    "norm_only",
    "target_from_module",
    "target_mlp",
    "to_module",
    "train_norm_only",
]
