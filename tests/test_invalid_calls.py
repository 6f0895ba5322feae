"""One table of invalid calls: each must raise a ValueError that names the argument and what would work.

Each row was silently accepted, or raised a raw TypeError / AttributeError / IndexError /
NotImplementedError, or named an internal value, before the argument checks of
`verify.core.validate` (``as_real``, ``as_count``, ``as_seed``, ``as_array``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import verify

torch = pytest.importorskip("torch")
from verify.nn import (  # noqa: E402
    fit_norm_layers,
    frozen_like,
    frozen_mlp,
    load_norm_params,
    target_mlp,
    train_norm_only,
)

WEIGHTS = [np.eye(2), np.eye(2)]


def _random(**kwargs: object) -> object:
    return verify.TargetNetwork.random([2, 2], **kwargs)


def _frozen(**kwargs: object) -> object:
    return verify.FrozenNetwork(WEIGHTS, **kwargs)


def _train(**kwargs: object) -> object:
    options = {"steps": 1, "lr": 1e-2} | kwargs
    return train_norm_only(frozen_mlp([3, 12, 4, 8, 2]), target_mlp([3, 4, 2]), verify.Ball(1.0), **options)


_KEEP_GRAPH = lambda x: torch.nn.functional.pad(x, (0, 0))  # noqa: E731
"""A no-op zero padding: the model stays on the graph route (a plain chain would be read as a Sequential)."""


def _graph_fit(idiom: Callable[[object], object] | None = None, shape: tuple = (3, 6, 6), model=None) -> object:
    """A model class read as a graph (an idiom between a convolution and a head, or ``model``) fitted on a box."""
    import torch.nn.functional as F  # noqa: F401 (used by the idioms' lambdas)
    from models_cifar import Around, LambdaLayer, seeded

    from verify.nn import fit_norm_layers, frozen_like

    target = seeded(model if model is not None else Around(LambdaLayer(idiom or (lambda x: x))), 0)
    return fit_norm_layers(frozen_like(target, width=2.0, seed=1), target, verify.Box(0, 1, shape=shape))


def _reconstruct(**kwargs: object) -> object:
    target = verify.TargetNetwork.random([3, 2], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, width="paper", seed=1)
    return verify.reconstruct(target, frozen, verify.Ball(1.0), **kwargs)


def _fit(frozen: object = None, target: object = None, **kwargs: object) -> object:
    from verify.nn import fit_norm_layers

    target = target_mlp([3, 4, 2], seed=1, dtype=torch.float64) if target is None else target
    frozen = frozen_mlp([3, 12, 4, 8, 2], seed=0, dtype=torch.float64) if frozen is None else frozen
    return fit_norm_layers(frozen, target, verify.Ball(1.0), **kwargs)


def _train_mode_target() -> object:
    nn = torch.nn
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).double().train()


INVALID = [
    pytest.param(lambda: _reconstruct(rtol=True), "rtol must be a positive finite number, got bool", id="rtol-bool"),
    pytest.param(lambda: _reconstruct(rtol="1e-6"), "rtol must be a positive finite number, got str", id="rtol-str"),
    pytest.param(
        lambda: _reconstruct(method="lstsq", bound=-1), "bound must be a positive finite number", id="bound-neg"
    ),
    pytest.param(
        lambda: _reconstruct(method="lstsq", bound=float("nan")),
        "bound must be a positive finite number",
        id="bound-nan",
    ),
    pytest.param(
        lambda: _reconstruct(method="lstsq", bound="abc"),
        "bound must be a positive finite number, got str",
        id="bound-str",
    ),
    pytest.param(lambda: load_norm_params(None, None), r"module must be a torch nn\.Module", id="load-none"),
    # silently accepted before
    pytest.param(lambda: verify.TargetNetwork([np.ones((2, 2)) + 1j]), r"weights\[0\] must be real", id="complex"),
    pytest.param(lambda: verify.Ball("2"), "radius must be a positive finite number, got str '2'", id="ball-str"),
    pytest.param(lambda: verify.Ball(1.0, []), "center must have at least one coordinate", id="ball-center-empty"),
    pytest.param(lambda: verify.paper_width(-1, 3), "d_out must be an integer >= 1, got -1", id="paper-width"),
    pytest.param(lambda: verify.minimal_width(2, 0), "d_in must be an integer >= 1, got 0", id="minimal-width"),
    pytest.param(lambda: frozen_mlp([3, 12.5, 4, 8, 2]), r"widths\[1\] must be an integer >= 1", id="frozen-float"),
    pytest.param(lambda: target_mlp([3, 4.7, 2]), r"widths\[1\] must be an integer >= 1", id="target-float"),
    pytest.param(lambda: frozen_mlp([3, 12, 2], eps=-1), "eps must be a finite number >= 0", id="frozen-mlp-eps"),
    pytest.param(lambda: verify.khatri_rao(np.full((2, 3), np.nan), np.ones((3, 2))), "a must be finite", id="kr-nan"),
    pytest.param(lambda: verify.khatri_rao(np.ones((2, 3)), np.ones((3, 2)) + 1j), "b must be real", id="kr-complex"),
    pytest.param(
        lambda: verify.khatri_rao(np.ones((2, 3, 1)), np.ones((3, 2))), r"a must have shape \(n, n\)", id="kr-3d"
    ),
    pytest.param(lambda: verify.khatri_rao(np.ones((2, 3)), np.ones((4, 2))), r"b must have shape \(3, n\)", id="kr-n"),
    # raw TypeError / ValueError from numpy before
    pytest.param(lambda: _random(seed=1.5), "seed must be an integer >= 0, got float 1.5", id="seed-float"),
    pytest.param(lambda: _random(seed=None), "seed must be an integer >= 0, got NoneType", id="seed-none"),
    pytest.param(lambda: _random(seed="x"), "seed must be an integer >= 0, got str 'x'", id="seed-str"),
    pytest.param(lambda: _random(seed=-1), "seed must be an integer >= 0, got -1", id="seed-negative"),
    pytest.param(lambda: _random(scale=None), "scale must be a positive finite number", id="scale-none"),
    pytest.param(lambda: _random(scale="2"), "scale must be a positive finite number, got str", id="scale-str"),
    pytest.param(lambda: _frozen(eps=None), "eps must be a finite number >= 0, got NoneType", id="eps-none"),
    pytest.param(lambda: _frozen(eps="1e-5"), "eps must be a finite number >= 0, got str", id="eps-str"),
    pytest.param(lambda: _frozen(eps=np.ones(3)), r"eps must have 2 entries \(one per layer\), got 3", id="eps-array"),
    pytest.param(lambda: _frozen(eps=-1), "eps must be a finite number >= 0, got -1.0", id="eps-negative"),
    pytest.param(lambda: _frozen(eps=float("nan")), "eps must be a finite number >= 0, got nan", id="eps-nan"),
    pytest.param(lambda: verify.Ball(None), "radius must be a positive finite number, got NoneType", id="ball-none"),
    pytest.param(lambda: verify.Ball([1, 2]), "radius must be a positive finite number, got list", id="ball-list"),
    pytest.param(
        lambda: verify.TargetNetwork([torch.ones(2, 2, device="meta")]), "on the meta device", id="meta-tensor"
    ),
    pytest.param(lambda: _train(batch=0), "batch must be an integer >= 1, got 0", id="train-batch"),
    pytest.param(lambda: _train(evaluate_every=0), "evaluate_every must be an integer >= 1", id="train-every"),
    pytest.param(lambda: _train(steps=2.5), "steps must be an integer >= 1, got float 2.5", id="train-steps"),
    pytest.param(lambda: _train(lr=0), "lr must be a positive finite number, got 0.0", id="train-lr"),
    # fit_norm_layers: the mode, a target in train mode, a frozen module that does not run the construction's chain
    pytest.param(
        lambda: _fit(mode="fast"), r"mode must be one of \('auto', 'paper', 'minimal', 'approximate'\)", id="fit-mode"
    ),
    pytest.param(
        lambda: _fit(target=_train_mode_target()),
        r"target layer '1' \(BatchNorm1d\).*target\.eval\(\)",
        id="fit-train-bn",
    ),
    pytest.param(
        lambda: _fit(torch.nn.Sequential(*frozen_mlp([3, 12, 4, 8, 2], dtype=torch.float64), torch.nn.ReLU())),
        r"layer 11 \(ReLU\).*a frozen network ends with its last BatchNorm1d",
        id="fit-relu-appended",
    ),
    # issue 22: numpy's message, a raw TypeError or AssertionError, a wrong hint, or silently ignored before
    pytest.param(lambda: _reconstruct(seed=-1), "seed must be an integer >= 0, got -1; pass a whole", id="seed-neg"),
    pytest.param(lambda: _reconstruct(seed="a"), "seed must be an integer >= 0, got str 'a'", id="seed-str"),
    pytest.param(lambda: _fit_s(seed=-1), "seed must be an integer >= 0, got -1", id="fit-seed-neg"),
    pytest.param(lambda: frozen_mlp([3, 12, 2], seed="a"), "seed must be an integer >= 0, got str", id="mlp-seed"),
    pytest.param(lambda: _fit_s(sparse="target"), r"target tensor '0\.weight' is a torch sparse", id="sparse-target"),
    pytest.param(lambda: _fit_s(sparse="frozen"), r"frozen tensor '0\.weight' is a torch sparse", id="sparse-frozen"),
    pytest.param(
        lambda: frozen_like(_sparse(target_mlp([3, 4, 2]))), "is a torch sparse tensor", id="sparse-frozen-like"
    ),
    pytest.param(
        lambda: _no_cuda(lambda: frozen_mlp([3, 12, 2], device="cuda")),
        "device='cuda': CUDA is not available on this machine; use device='cpu'",
        id="frozen-mlp-cuda",
    ),
    pytest.param(
        lambda: _no_cuda(lambda: target_mlp([3, 2], device="cuda:0")),
        "CUDA is not available on this machine; use device='cpu'",
        id="target-mlp-cuda",
    ),
    pytest.param(lambda: target_mlp([3, 2], device="gpu"), "device must be a torch device such as 'cpu'", id="device"),
    pytest.param(
        lambda: _reconstruct(bound=1e3),
        "bound=1000.0 is the .* of method='box' only, and method 'auto'",
        id="bound-auto",
    ),
    pytest.param(
        lambda: _reconstruct(method="lstsq", bound=1e3),
        "method 'lstsq' would ignore it; pass method='box'",
        id="bound-ls",
    ),
    pytest.param(
        lambda: _graph_fit(lambda x: torch.cat([x, x], 0)),
        r"graph node 'cat' \(.*\) is not supported: it mixes the rows of the batch",
        id="graph-cat-batch",
    ),
    pytest.param(
        lambda: _graph_fit(lambda x: x.reshape(1, -1)),
        "graph node 'reshape' .* mixes the rows",
        id="graph-reshape-batch",
    ),
    pytest.param(lambda: _graph_fit(lambda x: x[1:]), "graph node 'getitem' .* mixes the rows", id="graph-index-batch"),
    pytest.param(
        lambda: _graph_fit(lambda x: x.transpose(0, 1)), "graph node 'transpose' .* mixes the rows", id="graph-batch-t"
    ),
    pytest.param(
        lambda: _graph_fit(lambda x: torch.nn.functional.pad(x, (1, 1), value=1.0)),
        r"graph node 'pad' .* only zero padding is read \(got value=1.0\)",
        id="graph-pad-value",
    ),
    pytest.param(
        lambda: _graph_fit(_KEEP_GRAPH, shape=(1, 6, 6)),
        r"input shape \(1, 6, 6\): it fails at graph node 'conv' .* its first layer 'conv' \(conv \(Conv2d\)\) "
        r"expects inputs shaped \(3, H, W\)",
        id="graph-domain-channels",
    ),
    pytest.param(
        lambda: _graph_fit(_KEEP_GRAPH, shape=(3, 5, 5)),
        r"input shape \(3, 5, 5\): it fails at graph node 'fc' .* first layer 'conv'",
        id="graph-domain-size",
    ),
]


def _sparse(module: torch.nn.Module) -> torch.nn.Module:
    module[0].weight = torch.nn.Parameter(module[0].weight.detach().to_sparse())
    return module


def _fit_s(seed: object = 0, sparse: str = "") -> object:
    target, frozen = target_mlp([3, 4, 2]), frozen_mlp([3, 12, 4, 8, 2])
    _sparse({"target": target, "frozen": frozen}[sparse]) if sparse else None
    return fit_norm_layers(frozen, target, verify.Ball(1.0), seed=seed)


def _no_cuda(call: Callable[[], object]) -> object:
    """``call`` as on a machine without CUDA (this one may have it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.cuda, "is_available", lambda: False)
        return call()


@pytest.mark.parametrize(("call", "message"), INVALID)
def test_an_invalid_call_names_the_argument(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_a_domain_too_large_for_float64_is_refused_in_words() -> None:
    # Regression: Ball(1e308) was refused with "beta[0] must be finite" (an internal value), after
    # overflow warnings; it now says what overflowed and what to do.
    target = verify.TargetNetwork.random([3, 2], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, width="paper", seed=1)
    with pytest.raises(verify.CertificateError, match="too large for float64; use a smaller domain"):
        verify.reconstruct(target, frozen, verify.Ball(1e308))


def test_certificate_to_dict_is_strict_json() -> None:
    # Regression: Certificate.to_dict() held inf (a paired network's margin), which is not valid JSON.
    import json

    target = verify.TargetNetwork.random([3, 2], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, width="paper", seed=1, paired=True)
    document = verify.reconstruct(target, frozen, None).certificate.to_dict()
    assert document["min_margin"] == "inf"
    assert json.loads(json.dumps(document, allow_nan=False))["holds"] is True
