"""The solvers of docs/design.md §5 behind `reconstruct(..., method=...)`."""

from __future__ import annotations

import numpy as np
import pytest

import verify
from verify.core.scale_equation import KhatriRaoOperator
from verify.solvers.registry import METHODS, choose

torch = pytest.importorskip("torch")

EPS = np.finfo(float).eps
TARGET = verify.TargetNetwork.random([4, 5, 3], seed=0)
DOMAIN = verify.Box([-1.0] * 4, [1.0, 2.0, 1.0, 0.5])
OPTIONS = {"box": {"bound": 100.0}}


def _frozen(width: object, seed: int = 1) -> verify.FrozenNetwork:
    return verify.FrozenNetwork.for_target(TARGET, width=width, seed=seed, biases=True)


@pytest.mark.parametrize("width", ["paper", 2.0])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_reproduces_the_target(method: str, width: object) -> None:
    frozen = _frozen(width)
    result = verify.reconstruct(TARGET, frozen, DOMAIN, method=method, **OPTIONS.get(method, {}))
    assert result.certificate.holds and result.certificate.method == method
    x = DOMAIN.sample(300, np.random.default_rng(5))
    # Same derived tolerance as the certificate's sampled check (see verify.core.tolerances).
    scale = frozen.magnitude(x, result.gamma, result.beta) + TARGET.magnitude(x)
    tolerance = verify.evaluation_tolerance(
        frozen.widths, TARGET.widths, [b.residual_ratio for b in result.certificate.blocks]
    )
    assert np.all(np.abs(result.network(x) - TARGET(x)) <= tolerance * scale)


def test_auto_records_its_choice() -> None:
    exact_width = verify.reconstruct(TARGET, _frozen("paper"), DOMAIN)
    wider = verify.reconstruct(TARGET, _frozen(2.0), DOMAIN)
    assert all(b.solver.startswith("auto -> direct") for b in exact_width.certificate.blocks)
    # Wider than the paper width a shifted block has a null space: auto takes its smaller-bound solution,
    # the minimum weighted norm, with the method it picks by size (lstsq here).
    assert all(b.solver.startswith("auto -> weighted: lstsq") for b in wider.certificate.blocks)
    assert choose(2048, 1024) == "lstsq" and choose(2 * 1025, 1025) == "iterative" and choose(9, 9) == "direct"


def test_l1_has_at_most_d_squared_live_neurons_and_smaller_l1_norm() -> None:
    frozen = _frozen(3.0)
    l1 = verify.reconstruct(TARGET, frozen, DOMAIN, method="l1")
    lstsq = verify.reconstruct(TARGET, frozen, DOMAIN, method="lstsq")
    d = TARGET.widths
    for k, (sparse, dense) in enumerate(zip(l1.certificate.blocks, lstsq.certificate.blocks, strict=True), start=1):
        assert sparse.live_neurons <= d[k] * d[k - 1] < dense.live_neurons
        g_l1, g_ls = l1.scales[2 * k - 2], lstsq.scales[2 * k - 2]
        # The LP optimum is <= the L1 norm of any feasible point; the polished vertex differs from the
        # optimum by rounding, at most n·eps·condition relative.
        slack = sparse.width * EPS * sparse.condition * np.abs(g_ls).sum()
        assert np.abs(g_l1).sum() <= np.abs(g_ls).sum() + slack
        assert sparse.diagnostics["status"] == "optimal"


def test_linf_is_smallest_largest_scale_and_box_respects_its_bound() -> None:
    frozen = _frozen(2.0)
    linf = verify.reconstruct(TARGET, frozen, DOMAIN, method="linf")
    lstsq = verify.reconstruct(TARGET, frozen, DOMAIN, method="lstsq")
    for j in (0, 2):
        assert np.abs(linf.scales[j]).max() <= np.abs(lstsq.scales[j]).max() * (1 + 1e-9)
    smallest = max(np.abs(linf.scales[j]).max() for j in (0, 2))
    bound = 1.01 * smallest
    boxed = verify.reconstruct(TARGET, frozen, DOMAIN, method="box", bound=bound)
    assert all(np.abs(boxed.scales[j]).max() <= bound for j in (0, 2))
    with pytest.raises(verify.InfeasibleError, match="the smallest bound that works is C =") as info:
        verify.reconstruct(TARGET, frozen, DOMAIN, method="box", bound=0.5 * smallest)
    reported = float(str(info.value).split("works is C = ")[1].split(" ")[0])
    assert reported == pytest.approx(np.abs(linf.scales[2 * info.value.block - 2]).max(), rel=1e-5)


def test_min_shift_does_not_shift_more_than_lstsq() -> None:
    frozen = _frozen(2.0)
    box = verify.Box([1.0] * 4, [2.0] * 4)  # off-centre: shifts matter
    shifted = verify.reconstruct(TARGET, frozen, box, method="min_shift")
    lstsq = verify.reconstruct(TARGET, frozen, box, method="lstsq")
    for j in (0, 2):
        assert shifted.shifts[j].sum() <= lstsq.shifts[j].sum() * (1 + 1e-9)


def test_exact_has_residual_exactly_zero_and_agrees_exactly() -> None:
    result = verify.reconstruct(TARGET, _frozen(1.5), verify.Ball(1.0), method="exact")
    exact = result.certificate.exact
    assert exact is not None and exact.holds and exact.residual_is_zero and exact.agree
    assert all(b["residual_is_zero"] for b in exact.blocks) and exact.points == 32
    assert result.certificate.to_dict()["exact"]["holds"] is True


def test_exact_check_catches_a_wrong_rational_solution(monkeypatch: pytest.MonkeyPatch) -> None:
    import flint

    from verify.construction import tuning as _construct  # where each block is solved

    real = _construct.solve_exact

    def off(a, b, w, *, block):
        solution, gamma_q = real(a, b, w, block=block)
        return solution, [g + flint.fmpq(1, 2**60) for g in gamma_q]

    monkeypatch.setattr(_construct, "solve_exact", off)
    with pytest.raises(verify.CertificateError, match="exact check failed"):
        verify.reconstruct(TARGET, _frozen("paper"), verify.Ball(1.0), method="exact")


def test_invalid_method_arguments() -> None:
    frozen = _frozen("paper")
    with pytest.raises(ValueError, match="method must be one of"):
        verify.reconstruct(TARGET, frozen, DOMAIN, method="newton")
    with pytest.raises(ValueError, match="mode='minimal' uses the SVD null space"):
        verify.reconstruct(TARGET, frozen, DOMAIN, mode="minimal", method="l1")
    with pytest.raises(ValueError, match="method 'box' needs bound=C"):
        verify.reconstruct(TARGET, frozen, DOMAIN, method="box")


def test_khatri_rao_operator_adjoint_and_products() -> None:
    """⟨K u, v⟩ = ⟨u, Kᵀ v⟩ to rounding: both sides sum n·d_out·d_in products, so they agree to
    about that many eps times the sum of absolute products."""
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((5, 40)), rng.standard_normal((40, 6))
    operator = KhatriRaoOperator(a, b)
    u, v = rng.standard_normal(40), rng.standard_normal(30)
    explicit = verify.khatri_rao(a, b)
    magnitude = np.abs(v) @ np.abs(explicit) @ np.abs(u)
    assert abs(operator.matvec(u) @ v - u @ operator.rmatvec(v)) <= 2 * 40 * 30 * EPS * magnitude
    np.testing.assert_allclose(operator.matvec(u), explicit @ u, rtol=0, atol=40 * EPS * np.abs(explicit).sum())
    with pytest.raises(ValueError, match="must agree in n"):
        KhatriRaoOperator(a, b.T)


def _torch_copy(frozen: verify.FrozenNetwork, device: str) -> verify.FrozenNetwork:
    def t(arrays):
        return [torch.tensor(np.asarray(m), device=device) for m in arrays]

    return verify.FrozenNetwork(t(frozen.weights), t(frozen.biases), t(frozen.running_mean), t(frozen.running_var))


@pytest.mark.parametrize("method", ["iterative", "lstsq", "direct"])
def test_torch_cpu_agrees_with_numpy(method: str) -> None:
    frozen = _frozen(2.0)
    numpy_result = verify.reconstruct(TARGET, frozen, DOMAIN, method=method)
    torch_result = verify.reconstruct(TARGET, _torch_copy(frozen, "cpu"), DOMAIN, method=method)
    for g_t, g_n in zip(torch_result.gamma + torch_result.beta, numpy_result.gamma + numpy_result.beta, strict=True):
        assert isinstance(g_t, torch.Tensor) and g_t.dtype == torch.float64 and g_t.device.type == "cpu"
        assert float((g_t - torch.from_numpy(g_n)).abs().max()) <= 1e-10 * max(1.0, float(np.abs(g_n).max()))
    x = torch.tensor(DOMAIN.sample(50, np.random.default_rng(1)))
    out = torch_result.network(x)
    assert isinstance(out, torch.Tensor)
    assert float((out - TARGET(x)).abs().max()) <= 1e-10 * float(TARGET(x).abs().max())
    if method == "iterative":
        assert "torch" in torch_result.certificate.blocks[0].solver


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_iterative_stays_on_the_device() -> None:
    frozen = _frozen(2.0)
    result = verify.reconstruct(TARGET, _torch_copy(frozen, "cuda"), DOMAIN, method="iterative")
    assert all(g.device.type == "cuda" for g in result.gamma)
    assert "cuda" in result.certificate.blocks[0].solver
    reference = verify.reconstruct(TARGET, frozen, DOMAIN, method="iterative")
    for g_t, g_n in zip(result.gamma, reference.gamma, strict=True):
        assert float((g_t.cpu() - torch.from_numpy(g_n)).abs().max()) <= 1e-10 * max(1.0, float(np.abs(g_n).max()))


def _equation(d_out: int = 3, d_in: int = 2, n: int = 9, seed: int = 7):
    from verify.core.scale_equation import ScaleEquation

    rng = np.random.default_rng(seed)
    return ScaleEquation(
        rng.standard_normal((d_out, n)), rng.standard_normal((n, d_in)), rng.standard_normal((d_out, d_in))
    )


def test_scale_equation_builds_k_once_and_agrees_with_its_operators() -> None:
    equation = _equation()
    assert (equation.d_out, equation.d_in, equation.n, equation.needed) == (3, 2, 9, 6)
    assert equation.k is equation.k  # built once, on first use
    assert np.array_equal(equation.k, verify.khatri_rao(equation.a, equation.b))
    gamma = np.random.default_rng(1).standard_normal(9)
    assert np.array_equal(equation.operator.matvec(gamma), ((equation.a * gamma) @ equation.b).reshape(-1))
    error, terms = equation.residual(gamma)
    assert np.array_equal(error, (equation.a * gamma) @ equation.b - equation.w)
    assert np.array_equal(terms.reshape(-1), equation.magnitude.matvec(np.abs(gamma)) + np.abs(equation.target))
    assert np.array_equal(equation.columns(np.array([4, 1])), equation.k[:, [4, 1]])
    assert np.array_equal(equation.rows([2, 0]).k, verify.khatri_rao(equation.a[[2, 0]], equation.b))
    with pytest.raises(ValueError, match="must agree"):
        type(equation)(equation.a, equation.b[:4], equation.w)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "auto"] + ["minimal"])
def test_every_solver_takes_the_equation_or_its_matrices(method: str) -> None:
    """The registry's one interface: ``solve_with(method, equation)`` equals ``solve_with(method, a, b, w)``."""
    from verify.solvers.registry import SOLVERS, solve_with

    assert method in SOLVERS
    equation = _equation(n=6 if method == "minimal" else 9)
    options = OPTIONS.get(method, {})
    if method in ("min_shift", "min_bound", "weighted"):  # built on the shift: the odd layer's range on a box
        options = {"image": verify.Box(-1.0, 1.0).resolve(equation.d_in).affine_range(equation.b, np.zeros(9))}
    by_equation = solve_with(method, equation, block=1, **options)
    by_matrices = solve_with(method, equation.a, equation.b, equation.w, block=1, **options)
    assert np.array_equal(by_equation.scale, by_matrices.scale) and by_equation.method == by_matrices.method
    error, terms = equation.residual(by_equation.scale, by_equation.row_scale)
    assert np.all(np.abs(error) <= 64 * (equation.n + equation.needed) * EPS * terms)


def test_iterative_runs_in_torch_for_a_device_and_matches_the_tensor_form() -> None:
    from verify.core.interop import TorchSpec
    from verify.solvers.registry import solve_with

    equation = _equation(d_out=4, d_in=4, n=24)
    spec = TorchSpec(torch.device("cpu"), torch.float64)
    on_device = solve_with("iterative", equation, block=1, device=spec)
    tensors = [torch.tensor(m) for m in (equation.a, equation.b, equation.w)]
    by_tensors = solve_with("iterative", *tensors, block=1)
    assert on_device.method == by_tensors.method == "iterative: LSMR (torch, cpu)"
    assert np.array_equal(on_device.scale, by_tensors.scale)
    assert on_device.diagnostics["device"] == "cpu" and on_device.diagnostics["residual_ratios"]
    numpy_run = solve_with("iterative", equation, block=1)
    assert numpy_run.method == "iterative: LSMR (scipy)" and "device" not in numpy_run.diagnostics


def test_solve_with_rejects_unknown_methods_and_operands() -> None:
    from verify.solvers.registry import solve_with

    equation = _equation()
    with pytest.raises(ValueError, match="method must be one of"):
        solve_with("newton", equation, block=1)
    with pytest.raises(TypeError, match="one ScaleEquation or the three matrices"):
        solve_with("lstsq", equation.a, equation.b, block=1)
