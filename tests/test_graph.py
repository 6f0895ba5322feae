"""Models read as graphs (docs/design.md §10): MLP classes and residual MLPs reconstructed node by node.

Every check against torch's own forward uses the bound the reconstruction derives for it
(`GraphReconstruction.error_bound`: the pairs' certified bounds carried through the graph), never a
hand-picked tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import verify
from verify.nn import fit_norm_layers, from_module, target_from_module
from verify.nn.graph import read_graph
from verify.nn.graph_fit import GraphReconstruction, fit_graph
from verify.nn.graph_frozen import frozen_graph


class FunctionalMLP(nn.Module):
    """F.relu, torch.relu and x.relu(), as users write them."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3, self.fc4 = nn.Linear(5, 4), nn.Linear(4, 4), nn.Linear(4, 3), nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc4(self.fc3(x).relu())


class WrappedMLP(nn.Module):
    """A Sequential inside a class, starting with nn.Flatten(), followed by a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Dropout(0.3), nn.Linear(5, 4), nn.ReLU())
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ResidualMLP(nn.Module):
    """Two residual blocks σ(x + F(x)) with BatchNorm after each Linear, then a head: additions and folded BN."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.stem = nn.Linear(3, width)
        self.blocks = nn.ModuleList()
        for _ in range(2):
            self.blocks.append(
                nn.ModuleDict(
                    {
                        "fc1": nn.Linear(width, width),
                        "bn1": nn.BatchNorm1d(width),
                        "fc2": nn.Linear(width, width),
                        "bn2": nn.BatchNorm1d(width),
                    }
                )
            )
        self.head = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        for block in self.blocks:
            out = F.relu(block["bn1"](block["fc1"](x)))
            x = F.relu(block["bn2"](block["fc2"](out)) + x)
        return self.head(x)


def _target(cls: type[nn.Module], seed: int = 0) -> nn.Module:
    """A float64 target in eval mode with non-trivial BatchNorm statistics (seeded, global generator untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls().double()
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                with torch.no_grad():
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
                    if module.affine:
                        module.weight.uniform_(0.5, 1.5)
                        module.bias.uniform_(-0.5, 0.5)
    return model.eval()


def _fresh_points(dim: int, count: int = 512) -> torch.Tensor:
    points = verify.Box(-np.ones(dim), np.ones(dim)).sample(count, np.random.default_rng(123))
    return torch.tensor(points)


@pytest.mark.parametrize("cls", [FunctionalMLP, WrappedMLP, ResidualMLP], ids=lambda c: c.__name__)
def test_graph_targets_are_reconstructed_within_the_derived_bound(cls: type[nn.Module]) -> None:
    target = _target(cls)
    frozen = frozen_graph(target, seed=1)
    dim = target_from_module(target).widths[0] if cls is not ResidualMLP else 3
    result = fit_graph(frozen, target, verify.Box(-np.ones(dim), np.ones(dim)))
    assert isinstance(result, GraphReconstruction) and result.holds
    assert not frozen.training
    x = _fresh_points(dim)
    with torch.no_grad():
        error = float((frozen(x) - target(x)).abs().max())
    # The derived tolerance: the propagated bound, itself within rtol = 1e-6 of the target's scale.
    assert error <= result.error_bound <= 1e-6 * result.f_max
    assert result.error_ratio <= 1
    depths = [row["depth"] for row in result.by_depth()]
    assert depths == list(range(1, result.depth + 1))


def test_residual_depths_and_figures_by_depth() -> None:
    target = _target(ResidualMLP)
    result = fit_norm_layers(frozen_graph(target, seed=0), target, verify.Box(-1, 1))
    depth = {n.name: n.depth for n in result.nodes}
    # stem 1; block 1: fc1 2, fc2 3; block 2: fc1 4, fc2 5; head 6 (the longest path through the branches).
    assert sorted(depth.values()) == [1, 2, 3, 4, 5, 6]
    for node in result.nodes:
        assert node.result.certificate.holds
        assert node.shift_ratio > 0
        assert node.margin_ratio <= 1  # float64: the carried errors are far inside the shifts' slack
    rows = result.by_depth()
    assert all(row["max_shift_ratio"] > 0 and 0 <= row["worst_error_ratio"] <= 1 for row in rows)
    assert result.to_dict()["holds"] is True


def test_bounds_follow_the_graph_an_addition_adds_its_inputs_bounds() -> None:
    target = _target(ResidualMLP)
    result = fit_norm_layers(frozen_graph(target, seed=0), target, verify.Box(-1, 1))
    graph = read_graph(target)
    from verify.nn.graph_idioms import node_values
    from verify.nn.graph_lower import interval_bounds

    lo, hi = -torch.ones(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64)
    bounds = interval_bounds(graph, lo, hi)
    add = next(n for n in graph.nodes if n.kind == "add")
    (a_lo, a_hi), (b_lo, b_hi) = (bounds[name] for name in add.inputs)
    assert torch.equal(bounds[add.name][0], a_lo + b_lo) and torch.equal(bounds[add.name][1], a_hi + b_hi)
    values = node_values(graph, _fresh_points(3))  # every node's value on domain points lies in its box
    for node in graph.nodes:
        if isinstance(values[node.name], torch.Tensor):
            n_lo, n_hi = bounds[node.name]
            assert bool((values[node.name] >= n_lo - 1e-12).all() and (values[node.name] <= n_hi + 1e-12).all())
    assert result.holds


def test_a_frozen_module_the_user_wrote_is_accepted() -> None:
    class Frozen(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            pair = lambda d_in, n, d_out: nn.Sequential(  # noqa: E731
                nn.Linear(d_in, n, bias=False), nn.BatchNorm1d(n), nn.ReLU(), nn.Linear(n, d_out), nn.BatchNorm1d(d_out)
            )
            self.a, self.b, self.c, self.d = pair(5, 20, 4), pair(4, 16, 4), pair(4, 12, 3), pair(3, 6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.d(F.relu(self.c(F.relu(self.b(F.relu(self.a(x)))))))

    target = _target(FunctionalMLP)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        frozen = Frozen().double().eval()
    result = fit_graph(frozen, target, verify.Box(-1, 1))
    with torch.no_grad():
        x = _fresh_points(5)
        assert float((frozen(x) - target(x)).abs().max()) <= result.error_bound


def test_a_frozen_module_of_another_shape_is_refused_naming_the_node() -> None:
    target = _target(FunctionalMLP)

    class NoPair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(5, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x)

    with pytest.raises(ValueError, match=r"graph node 'a' \(a \(Linear\)\).*every Linear \(Conv2d\) starts a pair"):
        fit_graph(NoPair().double(), target, verify.Box(-1, 1))
    other = frozen_graph(_target(ResidualMLP), seed=0)
    with pytest.raises(
        ValueError,
        match=r"frozen pair 'head_4' \(head.0 \(Linear\)\) does not fit target layer 'fc4' \(fc4 \(Linear\)\): "
        r"it maps 4 -> 2 features, the target 3 -> 2",
    ):
        fit_norm_layers(other, target, verify.Box(-1, 1))


class Sigmoid(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(x))


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


class Norm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.ln = nn.Linear(3, 3), nn.LayerNorm(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.fc(x))


class Difference(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) - x


class LooseNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.bn = nn.Linear(3, 3), nn.BatchNorm1d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(x) + x)


class Branching(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.fc(x)
        return x


class TrainDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.drop = nn.Linear(3, 3), nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc(x))


class TrainNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.bn = nn.Linear(3, 3), nn.BatchNorm1d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(x))


REFUSED = [
    pytest.param(Sigmoid, r"graph node 'sigmoid' \(sigmoid in the top-level forward\).*only Linear", id="sigmoid"),
    pytest.param(Functional, r"graph node 'weight'.*write the layer as an nn.Linear", id="functional-linear"),
    pytest.param(Norm, r"graph node 'ln' \(ln \(LayerNorm\)\).*LN\(c·h\) = LN\(h\)", id="layernorm"),
    pytest.param(Difference, r"graph node 'sub'.*only Linear", id="subtraction"),
    pytest.param(LooseNorm, r"graph node 'bn' \(bn \(BatchNorm1d\)\).*cannot be folded", id="bn-after-add"),
    pytest.param(Branching, r"cannot be traced by torch.fx.*nn.Sequential", id="control-flow"),
    pytest.param(TrainDropout, r"graph node 'drop'.*train mode is random", id="dropout-train"),
    pytest.param(TrainNorm, r"graph node 'bn' \(bn \(BatchNorm1d\)\).*batch statistics", id="batchnorm-train"),
]


@pytest.mark.parametrize(("cls", "message"), REFUSED)
def test_refusals_name_the_node_its_source_and_why(cls: type[nn.Module], message: str) -> None:
    module = cls().double()
    if cls not in (TrainDropout, TrainNorm):
        module.eval()
    with pytest.raises(ValueError, match=message):
        frozen_graph(module)


def test_classic_readers_accept_chain_classes() -> None:
    target = target_from_module(_target(FunctionalMLP))
    assert target.widths == (5, 4, 4, 3, 2)
    assert target_from_module(_target(WrappedMLP)).widths == (6, 5, 4, 3)

    class FrozenClass(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l1, self.n1, self.l2, self.n2 = nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 1), nn.BatchNorm1d(1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.n2(self.l2(F.relu(self.n1(self.l1(x)))))

    assert from_module(FrozenClass()).widths == (2, 4, 1)
    with pytest.raises(ValueError, match="fit_norm_layers, which reads graphs"):
        target_from_module(_target(ResidualMLP))


def test_frozen_graph_is_seeded_and_leaves_the_target_and_global_generator_alone() -> None:
    target = _target(ResidualMLP)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    state = torch.random.get_rng_state()
    one, two = frozen_graph(target, seed=3), frozen_graph(target, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    assert all(torch.equal(a, b) for a, b in zip(one.state_dict().values(), two.state_dict().values(), strict=True))
    assert not all(
        torch.equal(a, b)
        for a, b in zip(one.state_dict().values(), frozen_graph(target, seed=4).state_dict().values(), strict=True)
    )
    fit_norm_layers(one, target, verify.Box(-1, 1))
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
    widths = [m.out_features for m in one.modules() if isinstance(m, nn.Linear)]
    assert widths[:2] == [4 * 3, 4]  # paper width d_out·d_in for the stem, then d_out


def test_a_failed_certificate_leaves_the_frozen_module_unchanged() -> None:
    target = _target(ResidualMLP)
    frozen = frozen_graph(target, seed=0)
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    with pytest.raises(verify.CertificateError):
        fit_norm_layers(frozen, target, verify.Box(-1, 1), rtol=1e-18)
    assert all(torch.equal(before[k], v) for k, v in frozen.state_dict().items())


def test_float32_graph_is_certified_in_float32_counting_neurons_pushed_past_their_margin() -> None:
    target = _target(FunctionalMLP).float()
    frozen = frozen_graph(target, seed=0)
    assert next(frozen.parameters()).dtype == torch.float32
    result = fit_graph(frozen, target, verify.Box(-np.ones(5), np.ones(5)), rtol=1e-2)
    assert result.nodes[0].result.certificate.dtype == "float32"
    # where an error carried into a pair may take a neuron out of its linear regime (margin_ratio > 1), the
    # graph bound counts how far it may leave it (verify.core.graph_bound); every node's sample stays within it.
    assert all(n.error_ratio <= 1 for n in result.nodes)
    x = _fresh_points(5).float()
    with torch.no_grad():
        assert float((frozen(x) - target(x)).abs().max()) <= result.error_bound <= 1e-2 * result.f_max


class FlatResNet(nn.Module):
    """A ResNet with identity and projection shortcuts, on flat inputs viewed as 3 × 6 × 6 images."""

    def __init__(self) -> None:
        super().__init__()
        from verify.job.graph_models import ResNet

        self.net = ResNet((4, 6), 1, classes=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.view(x.size(0), 3, 6, 6))


def test_a_resnet_is_reconstructed_pair_by_pair_within_the_derived_bound() -> None:
    target = _target(FlatResNet)
    frozen = frozen_graph(target, seed=2)
    result = fit_norm_layers(frozen, target, verify.Box(np.zeros(108), np.ones(108)), samples=64)
    names = {n.name: n for n in result.nodes}
    # the projection shortcut of the second stage sits at the depth of that block's first convolution
    assert names["net_stages_1_shortcut_0"].depth == names["net_stages_1_conv1"].depth == 4
    assert result.depth == 6 and result.holds
    conv1 = frozen.get_submodule("net.stages.0.conv1")
    assert conv1[0].out_channels == 4 * 4 * 3 * 3 and conv1[3].kernel_size == (1, 1)  # paper width: C_out C_in k k
    x = torch.tensor(verify.Box(np.zeros(108), np.ones(108)).sample(256, np.random.default_rng(9)))
    with torch.no_grad():
        assert float((frozen(x) - target(x)).abs().max()) <= result.error_bound <= 1e-6 * result.f_max


def test_convolution_refusals_and_mismatches() -> None:
    class Grouped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, groups=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x.view(x.size(0), 2, 4, 4))

    with pytest.raises(ValueError, match=r"graph node 'conv' \(conv \(Conv2d\)\).*groups=1"):
        frozen_graph(Grouped())
    target = _target(FlatResNet)
    frozen = frozen_graph(target, seed=2)
    frozen.get_submodule("net.stages.0").conv2[0].padding = (0, 0)  # the pair no longer pads like the target
    with pytest.raises(ValueError, match=r"frozen pair .* does not fit target layer 'net_stages_0_conv2'.*padding"):
        fit_norm_layers(frozen, target, verify.Box(np.zeros(108), np.ones(108)))


def test_a_target_batchnorm_without_affine_is_folded_and_a_frozen_one_is_refused() -> None:
    class Plain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.bn, self.head = nn.Linear(3, 4), nn.BatchNorm1d(4, affine=False), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(F.relu(self.bn(self.fc(x))))

    target = _target(Plain)
    frozen = frozen_graph(target, seed=0)
    result = fit_graph(frozen, target, verify.Box(-np.ones(3), np.ones(3)))
    with torch.no_grad():
        assert float((frozen(_fresh_points(3)) - target(_fresh_points(3))).abs().max()) <= result.error_bound
    frozen.get_submodule("fc")[1].affine = False
    with pytest.raises(ValueError, match=r"graph node 'fc_1' .*affine=False has no weight and bias to tune"):
        fit_graph(frozen, target, verify.Box(-np.ones(3), np.ones(3)))


def test_mirrored_pairs_need_no_shift_and_carry_no_margin_risk() -> None:
    # docs/design.md §3 in a graph: [B; -B], [A, -A] pairs are solved on their halves with no shift, so the
    # errors carried into them can never take a neuron out of its regime (margin_ratio 0).
    target = _target(FlatResNet)
    frozen = frozen_graph(target, seed=2, paired=True)
    result = fit_norm_layers(frozen, target, verify.Box(np.zeros(108), np.ones(108)), samples=64)
    assert result.max_shift_ratio == 0 and all(n.margin_ratio == 0 for n in result.nodes)
    x = torch.tensor(verify.Box(np.zeros(108), np.ones(108)).sample(128, np.random.default_rng(9)))
    with torch.no_grad():
        assert float((frozen(x) - target(x)).abs().max()) <= result.error_bound <= 1e-6 * result.f_max


@pytest.mark.parametrize("fit", [fit_norm_layers, fit_graph], ids=["fit_norm_layers", "fit_graph"])
def test_a_frozen_graph_in_train_mode_is_read_as_eval_runs_it(fit) -> None:
    """A frozen graph module left in train mode is read as ``.eval()`` runs it, as a chain is, and fitted; the
    same γ, β as the eval-mode module get, and the module is left in eval mode."""
    target = _target(ResidualMLP)
    domain = verify.Box(-1, 1)
    expected = fit(frozen_graph(target, seed=0), target, domain)
    frozen = frozen_graph(target, seed=0).train()
    result = fit(frozen, target, domain)
    assert result.holds and not any(module.training for module in frozen.modules())
    assert all(np.array_equal(a, b) for a, b in zip(result.gamma, expected.gamma, strict=True))
    assert result.certificate.error_bound == expected.certificate.error_bound


class SmallBranch(nn.Module):
    """``x + fc2(relu(fc1(x)))`` with ``fc2`` scaled by ``1e-3``: the branch is a thousandth of the output."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(torch.relu(self.fc1(x)))


def test_rtol_judges_the_graph_bound_not_each_pair_against_its_own_output() -> None:
    """In float32 ``fc1``'s own one-block bound is about ``2.7e-5`` of its own largest output, but ``fc2`` carries
    a thousandth of that error to an output of size about 1: the graph's bound is about ``2e-7`` of ``f_max``.
    At ``rtol = 1e-6`` the graph is certified (it was refused by ``fc1``'s own certificate), each pair's
    certificate still checks its residual and margins, and torch's float32 forward of the tuned module stays
    within the bound on fresh points, box corners included."""
    torch.manual_seed(0)
    target = SmallBranch().float().eval()
    with torch.no_grad():
        target.fc2.weight.mul_(1e-3)
        target.fc2.bias.mul_(1e-3)
    frozen = verify.nn.frozen_like(target, width="paper", seed=0)
    domain = verify.Box(-1.0, 1.0, shape=(4,))
    result = fit_norm_layers(frozen, target, domain, rtol=1e-6, progress=False)
    cert = result.certificate
    assert cert.holds and cert.error_bound <= 1e-6 * cert.f_max
    own = [n.result.certificate for n in result.nodes]
    assert max(c.error_bound / c.f_max for c in own) > 1e-6  # a pair alone would have refused at this rtol
    assert all(b.holds for c in own for b in c.blocks)  # residuals and margins are still each pair's to prove
    rng = np.random.default_rng(7)
    corners = np.array(np.meshgrid(*[[-1.0, 1.0]] * 4)).reshape(4, -1).T
    x = torch.tensor(np.vstack([rng.uniform(-1, 1, (2000, 4)), corners]), dtype=torch.float32)
    with torch.no_grad():
        exact = target.double()(x.double())
        assert float((frozen(x).double() - exact).abs().max()) <= cert.error_bound
