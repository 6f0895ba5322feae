"""The certified error bound is sound (docs/design.md §6.5).

For every returned result, ``|ĝ(x) − f̂(x)|`` at many fresh points of the domain (boundary, box
corners and a ball's axis points included) is at most ``certificate.error_bound`` (on ``R^d``:
``error_bound + error_slope · ‖x‖_∞``), where ``ĝ`` is the tuned frozen network evaluated *in its
certified dtype* by torch's own ``linear`` and ``batch_norm`` (numpy float64 for float64) and ``f̂``
the target in its dtype, on the points rounded to that dtype.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import verify
from properties._support import certified_or_discard
from properties.strategies import domains, instances, seeds, targets
from verify.solvers.convex import ConvexSolverError


def mlp_modules(test: Callable[..., None]) -> Callable[..., None]:
    """The drawn MLP fits of the module properties: target widths 1–5 at depths 1–3 (``widths``), paper or
    minimal ``mode``, a torch ``seed`` and ``data`` for the points; no deadline (fits vary in time)."""
    drawn = given(
        widths=st.lists(st.integers(1, 5), min_size=2, max_size=4),
        mode=st.sampled_from(["paper", "minimal"]),
        data=st.data(),
        seed=st.integers(0, 2**31 - 1),
    )
    return drawn(
        settings(deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])(test)
    )


torch = pytest.importorskip("torch")

DTYPES = ("float64", "float32", "float16")
RTOL = {"float64": 1e-6, "float32": 0.5, "float16": 0.5}
"""Lower precisions are drawn with a loose ``rtol`` so that results are returned and their bound tested."""
FRESH = 512
METHODS = {"paper": ["auto", "direct", "lstsq", "iterative", "l1", "linf", "min_shift"], "minimal": ["auto", "lstsq"]}
"""Methods drawn per mode (``box`` needs a bound of its own and ``exact`` is slow: their own tests cover them)."""


def _tensors(values: tuple[np.ndarray, ...], dtype: object) -> list:
    return [torch.tensor(v, dtype=dtype) for v in values]


def _in_dtype(target: verify.TargetNetwork, frozen: verify.FrozenNetwork, name: str) -> tuple:
    """The same networks built from torch tensors of ``name`` (their values rounded to it)."""
    if name == "float64":
        return target, frozen
    dtype = getattr(torch, name)
    target = verify.TargetNetwork(_tensors(target.weights, dtype), _tensors(target.biases, dtype))
    frozen = verify.FrozenNetwork(
        _tensors(frozen.weights, dtype),
        _tensors(frozen.biases, dtype),
        _tensors(frozen.running_mean, dtype),
        _tensors(frozen.running_var, dtype),
        eps=frozen.eps,
    )
    return target, frozen


def _host(values: list) -> list[np.ndarray]:
    return [np.asarray(v.double().cpu().numpy() if hasattr(v, "cpu") else v, dtype=np.float64) for v in values]


def torch_forward(result: verify.Reconstruction, x: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``ĝ(x)`` and ``f̂(x)`` computed by torch in dtype ``name`` (``x`` rounded to it first)."""
    dtype = getattr(torch, name)
    frozen, target = result.frozen, result.target
    with torch.no_grad():
        u = v = torch.tensor(x, dtype=dtype)
        last = len(frozen.weights) - 1
        for j, (m, c, mu, var, g, b) in enumerate(
            zip(
                *(_tensors(t, dtype) for t in (frozen.weights, frozen.biases, frozen.running_mean, frozen.running_var)),
                *(_tensors(tuple(p), dtype) for p in (_host(result.gamma), _host(result.beta))),
                strict=True,
            )
        ):
            h = torch.nn.functional.linear(u, m, c)
            n = torch.nn.functional.batch_norm(h, mu, var, g, b, training=False, eps=frozen.layer_eps[j])
            u = n if j == last else torch.relu(n)
        for k, (w, b) in enumerate(zip(_tensors(target.weights, dtype), _tensors(target.biases, dtype), strict=True)):
            v = torch.nn.functional.linear(v, w, b)
            if k < target.depth - 1:
                v = torch.relu(v)
    return u.double().numpy(), v.double().numpy()


def fresh_points(
    domain: verify.Domain | None, dim: int, rng: np.random.Generator, radii: tuple[float, ...] = (1.0, 1e3, 1e6)
) -> np.ndarray:
    """Fresh points of the domain: samples (half on the boundary), box corners, a ball's axis points;
    on ``R^d`` (None), points of balls of the given radii (float16 overflows beyond 65504, so its
    ``R^d`` points stay within radius 10: the bound assumes no overflow)."""
    if domain is None:
        return np.concatenate([verify.Ball(r, np.zeros(dim)).sample(FRESH // 3, rng) for r in radii])
    domain = domain.resolve(dim)
    points = [domain.sample(FRESH, rng)]
    if isinstance(domain, verify.Box):
        corners = np.array(list(itertools.product(*zip(domain.lo, domain.hi, strict=True)))[:256])
        points.append(corners)
    else:
        axes = np.concatenate([np.eye(dim), -np.eye(dim)]) * domain.radius
        points.append(domain.center + axes)
    return np.concatenate(points)


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), seed=seeds())
# Refusals are expected in float16 (about 7 draws in 10: its bound exceeds even rtol = 0.5), and each
# refused draw is still checked (its samples lie within the bound) before it is filtered out.
@settings(suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
def test_error_bound_covers_fresh_points(dtype, data, seed):
    """docs/design.md §6.5: ``max |ĝ(x) − f̂(x)| <= error_bound`` at fresh points, in the certified dtype."""
    target, frozen, domain, mode = data.draw(instances(), label="instance")
    if data.draw(st.booleans(), label="paired"):
        frozen = verify.FrozenNetwork.for_target(
            target, "paper" if mode == "paper" else "minimal", seed=seed, paired=True, biases=data.draw(st.booleans())
        )
        domain = data.draw(st.sampled_from([None, domain]), label="paired domain")
    # Frozen weights scaled by a power of two (the verdict must not change, nor soundness), and any
    # method of the mode (methods built on the bias shift need a bounded domain).
    reach = 4 if dtype == "float16" else 20  # float16 overflows beyond 65504
    power = data.draw(st.integers(-reach, reach), label="frozen weights times 2^k")
    frozen = verify.FrozenNetwork(
        [np.ldexp(w, power) for w in frozen.weights], frozen.biases, frozen.running_mean, frozen.running_var, frozen.eps
    )
    methods = METHODS[mode] if domain is not None else [m for m in METHODS[mode] if m not in ("min_shift",)]
    method = data.draw(st.sampled_from(methods), label="method")
    target, frozen = _in_dtype(target, frozen, dtype)
    note(f"{target!r} {frozen!r} {domain!r} mode={mode} method={method} dtype={dtype}")
    result = certified_or_discard(
        lambda: verify.reconstruct(target, frozen, domain, mode, method=method, rtol=RTOL[dtype]),
        f"refused in {dtype}",
        {ConvexSolverError: "convex solvers failed"},
    )
    certificate = result.certificate
    assert certificate.dtype == dtype
    radii = (1.0, 10.0) if dtype == "float16" else (1.0, 1e3, 1e6)
    x = fresh_points(domain, target.widths[0], np.random.default_rng(seed), radii)
    if dtype == "float64":
        g, f = result.network(x), result.target(x)
    else:
        g, f = torch_forward(result, x, dtype)
    with np.errstate(invalid="ignore", over="ignore"):  # beyond the valid radius both may overflow: masked below
        error = np.max(np.abs(g - f), axis=1)
    bound = certificate.bound.at(x)
    claimed = np.isfinite(bound)  # on R^d, only up to the radius where the dtype provably cannot overflow
    error, bound, x, g, f = error[claimed], bound[claimed], x[claimed], g[claimed], f[claimed]
    assert error.size > 0 or certificate.valid_radius < 1.0, "no point of the domain is covered by the bound"
    if error.size == 0:
        event(f"{dtype}: valid radius below 1")
        return
    ratio = np.divide(error, bound, out=np.zeros_like(error), where=bound > 0)  # a zero target's bound is 0
    worst = int(np.argmax(ratio))
    note(f"{certificate.bound}; worst ratio {ratio[worst]:.3g} at {x[worst]}, g {g[worst]}, f {f[worst]}")
    assert np.all(error <= bound)
    relative = certificate.relative_error_bound
    if np.isfinite(relative) and relative > 0:
        event(f"{dtype}: bound / f_max <= 1e-{min(16, int(-np.log10(max(relative, 1e-16))))}")
    else:
        event(f"{dtype}: a zero bound (f_max 0)")


MODULE_DTYPES = ("float64", "float32")
"""The dtypes of the torch modules the residual and convolutional properties certify and run."""


@pytest.mark.parametrize("dtype", MODULE_DTYPES)
@given(
    target=targets(min_width=2, max_width=5, max_depth=3, biases=None),
    data=st.data(),
    seed=seeds(),
)
@settings(suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow], deadline=None)
def test_residual_error_bound_covers_fresh_points(dtype, target, data, seed):
    """docs/design.md §6.6: a Case-2 result's bound (the graph engine's, `verify.core.graph_stage`) covers torch's
    own forward of the frozen residual module.

    The module is a `verify.nn.frozen_residual_mlp` in ``dtype``, read as `verify.nn.fit_norm_layers` reads it
    (``to_network``) and certified in its dtype; the result is loaded into its BatchNorms and its own forward
    (in ``dtype``, on the points rounded to it) is compared with the float64 target at fresh points, box
    corners or a ball's axis points included. In float64 the numpy network's forward is compared too.
    """
    from verify.construction.residual import reconstruct_residual
    from verify.nn import load_norm_params
    from verify.nn.residual import frozen_residual_mlp

    rows = min(max(a, b) for a, b in itertools.pairwise(target.widths))
    branches = data.draw(st.integers(1, rows), label="branches")
    mode = data.draw(st.sampled_from(["paper", "minimal"]), label="mode")
    domain = data.draw(domains(target.widths[0], max_center=10.0), label="domain")
    module = frozen_residual_mlp(target.widths, branches=branches, width=mode, seed=seed, dtype=getattr(torch, dtype))
    frozen = module.to_network()
    note(f"{target!r} {frozen!r} {domain!r} mode={mode} dtype={dtype}")
    result = certified_or_discard(
        lambda: reconstruct_residual(target, frozen, domain, mode, rtol=RTOL[dtype], dtype=dtype),
        "refused: bound above rtol",
    )
    assert result.certificate.dtype == dtype
    load_norm_params(module, result)
    x = fresh_points(domain, target.widths[0], np.random.default_rng(seed))
    with torch.no_grad():
        g = module.eval()(torch.tensor(x, dtype=getattr(torch, dtype))).double().numpy()
    error = float(np.max(np.abs(g - target(x))))
    bound = result.certificate.error_bound
    note(f"max |g − f| {error:.3g}, bound {bound:.3g}, scale {result.certificate.scale:.3g}")
    assert error <= bound
    if dtype == "float64":  # the numpy route too: the `ResidualFrozenNetwork`'s own forward
        numpy_error = float(np.max(np.abs(result.network(x) - target(x))))
        note(f"numpy forward: max |g − f| {numpy_error:.3g}")
        assert numpy_error <= bound
    event(f"{dtype}: bound / observed >= 1e{int(np.log10(bound / error)) if error > 0 else 'inf'}")
    event(f"{dtype}: bound / f_max <= 1e{math.ceil(np.log10(max(result.certificate.relative_error_bound, 1e-16)))}")


@st.composite
def conv_targets(draw: st.DrawFn) -> tuple:
    """A small torch CNN target (float64, eval mode) and a box over its input: Conv1d or Conv2d with a drawn
    kernel, stride, padding and padding mode, a ReLU, an optional pool, then a 1×1 Conv or Flatten + Linear."""
    spatial = draw(st.sampled_from([1, 2]), label="spatial")
    conv = getattr(torch.nn, f"Conv{spatial}d")
    channels = draw(st.integers(1, 2), label="input channels")
    size = draw(st.integers(5, 7), label="input size")
    kernel = draw(st.integers(1, 3), label="kernel")
    padding = draw(st.integers(0, 1), label="padding")
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]), label="padding mode")
    stride = draw(st.integers(1, 2), label="stride")
    hidden = draw(st.integers(1, 3), label="hidden channels")
    torch.manual_seed(draw(seeds(), label="torch seed"))
    layers = [conv(channels, hidden, kernel, stride=stride, padding=padding, padding_mode=mode), torch.nn.ReLU()]
    shape = (channels, *([size] * spatial))
    pool = draw(st.sampled_from([None, "MaxPool", "AvgPool"]), label="pool")
    if pool is not None:
        layers.append(getattr(torch.nn, f"{pool}{spatial}d")(2))
    out = torch.nn.Sequential(*layers).double()(torch.zeros(1, *shape, dtype=torch.float64)).shape
    if draw(st.booleans(), label="linear head"):
        layers += [torch.nn.Flatten(), torch.nn.Linear(math.prod(out[1:]), 2)]
    else:
        layers.append(conv(hidden, 2, 1))
    lo = np.round(draw(st.floats(-2, 0), label="lo") + np.zeros(shape), 3)
    width = draw(st.floats(0.25, 2), label="box width")
    return torch.nn.Sequential(*layers).double().eval(), verify.Box(lo, lo + width)


def box_points(box: verify.Box, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` fresh points of ``box`` (flat): a third uniform, a third at corners (every coordinate at ``lo`` or
    ``hi``), a third with a random share of the coordinates rounded to a corner, plus the two extreme corners."""
    lo, hi = box.lo.reshape(-1), box.hi.reshape(-1)
    uniform = rng.uniform(lo, hi, (count, lo.size))
    corners = np.where(rng.random((count, lo.size)) < 0.5, lo, hi)
    share = rng.random((count, 1))
    mixed = np.where(rng.random((count, lo.size)) < share, corners[rng.permutation(count)], uniform)
    return np.concatenate([uniform[: count // 3], corners[: count // 3], mixed[: count // 3], [lo, hi]])


@pytest.mark.parametrize("dtype", MODULE_DTYPES)
@given(case=conv_targets(), width=st.sampled_from(["paper", "minimal"]), seed=seeds())
@settings(deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
def test_conv_error_bound_covers_fresh_points(dtype, case, width, seed):
    """docs/design.md §6.7: for a CNN fitted by `fit_norm_layers`, torch's own forward of the frozen module in
    ``dtype`` (certified in that dtype) stays within ``certificate.error_bound`` of the target module's float64
    forward at fresh points, corners included (the float32 target holds the same values as its float64 copy)."""
    from verify.nn import fit_norm_layers, frozen_like

    target, box = case
    target = target.to(getattr(torch, dtype))
    frozen = frozen_like(target, width, seed=seed)
    result = certified_or_discard(lambda: fit_norm_layers(frozen, target, box, rtol=RTOL[dtype]))
    certificate = result.certificate
    assert not certificate.sampled_only and np.isfinite(certificate.error_bound) and certificate.dtype == dtype
    x = box_points(box, FRESH, np.random.default_rng(seed))
    with torch.no_grad():
        inputs = torch.tensor(x.reshape(-1, *box.shape), dtype=torch.float64)
        g = frozen(inputs.to(getattr(torch, dtype))).reshape(len(x), -1).double().numpy()
        f = copy.deepcopy(target).double()(inputs).reshape(len(x), -1).numpy()
    error = float(np.max(np.abs(g - f)))
    note(f"{target}; bound {certificate.error_bound:.3g}, observed {error:.3g}, scale {certificate.scale:.3g}")
    assert error <= certificate.error_bound
    event(f"{dtype}: bound / f_max <= 1e{math.ceil(np.log10(max(certificate.relative_error_bound, 1e-16)))}")
    if error == 0:
        event(f"{dtype}: observed 0: g = f exactly at every fresh point")
    else:
        event(f"{dtype}: bound / observed >= 1e{int(np.log10(certificate.error_bound / error))}")


@pytest.mark.parametrize("dtype", MODULE_DTYPES)
@mlp_modules
def test_mlp_module_error_bound_covers_fresh_points(dtype, widths, mode, data, seed):
    """docs/design.md §6.5: for a `verify.nn.frozen_mlp` fitted to a `verify.nn.target_mlp` by `fit_norm_layers`,
    torch's own forward of the frozen module in ``dtype`` stays within ``certificate.error_bound`` of the target
    module's forward in the same dtype on the same rounded inputs, at fresh points (box corners or a ball's axis
    points included). Depths 1–3: the errors cross the target's ReLUs as affine forms (kept signs, relaxed rows)."""
    from verify.nn import fit_norm_layers, frozen_like, target_mlp

    torch_dtype = getattr(torch, dtype)
    target = target_mlp(widths, seed=seed, dtype=torch_dtype).eval()
    frozen = frozen_like(target, mode, seed=seed + 1)
    domain = data.draw(domains(widths[0], max_center=10.0), label="domain")
    result = certified_or_discard(lambda: fit_norm_layers(frozen, target, domain, rtol=RTOL[dtype], progress=False))
    certificate = result.certificate
    assert certificate.dtype == dtype and np.isfinite(certificate.error_bound)
    resolved = domain.resolve(widths[0])
    rng = np.random.default_rng(seed)
    x = box_points(resolved, FRESH, rng) if isinstance(resolved, verify.Box) else fresh_points(resolved, widths[0], rng)
    with torch.no_grad():
        inputs = torch.tensor(x, dtype=torch_dtype)
        g, f = frozen.eval()(inputs).double().numpy(), target(inputs).double().numpy()
    error = float(np.max(np.abs(g - f)))
    note(f"{target}; bound {certificate.error_bound:.3g} ({certificate.bound.terms}), observed {error:.3g}")
    assert error <= certificate.error_bound
    if error > 0:
        event(f"{dtype}: bound / observed >= 1e{int(np.log10(certificate.error_bound / error))}")
