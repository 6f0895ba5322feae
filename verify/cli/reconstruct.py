"""``python -m verify reconstruct``: tune the BatchNorm layers of a saved frozen network to a saved target.

::

    python -m verify reconstruct --target target.pt --frozen frozen.pt --domain ball:1.0 --out tuned.pt

Both inputs are plain PyTorch state dicts (``torch.save(model.state_dict(), path)``), read with
``torch.load(..., weights_only=True)`` only (`verify.nn.state_dict.load_state_dict`): no pickled
code is ever run. A state dict records tensors, not layer types, so the architecture is inferred
from its keys and shapes and rebuilt by the grammar of `verify.nn.grammar`
(`verify.nn.rebuild.target_module`, `verify.nn.rebuild.frozen_module`): each gap in the layer
indices between two Linear layers is read as a ReLU.

The target ``Linear -> ReLU -> … -> Linear`` and the frozen ``Linear -> BatchNorm1d -> ReLU …``
stack (what `verify.nn.frozen_mlp` builds) are solved with `verify.nn.fit_norm_layers`. The output
is the frozen state dict with only the BatchNorm ``weight`` and ``bias`` replaced (same keys, same
dtypes, `verify.nn.state_dict.tuned_state_dict`), written atomically, never over an input.

This module is the command only: its options, the checks of ``--domain`` and ``--out``, its
messages and exit codes. PyTorch is imported when the command runs, so ``--help`` needs none.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import itertools
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verify.cli.eps import THE_EPS_TRAP, alternative, inferred
from verify.construction.reconstruct import MODES
from verify.core.blocks import widths_mismatch
from verify.core.domains import Ball, Box, Domain
from verify.core.errors import CertificateError, InfeasibleError
from verify.core.networks import paper_width
from verify.core.paths import missing_directory, node_problem
from verify.solvers.registry import METHODS

__all__ = ["DomainSpec", "UsageError", "check_out_path", "main", "parse_domain"]

PROG = "python -m verify reconstruct"
DOMAIN_FORMS = "ball:R, ball:R@c1,...,cd, box:LO,HI or all"
CHECK_POINTS = 256
"""Points of the torch forward check of the tuned module against the target module."""


class UsageError(ValueError):
    """A problem with the command's inputs, reported as one ``error: …`` line and exit status 2."""


# --------------------------------------------------------------------------------------------- domain


@dataclass(frozen=True)
class DomainSpec:
    """A parsed ``--domain``: ``kind`` is ``"ball"``, ``"box"`` or ``"all"``; `build` makes the `verify.Domain`.

    Attributes
    ----------
    kind : str
        ``"ball"`` (radius, optional centre), ``"box"`` (the same ``[lo, hi]`` in every coordinate)
        or ``"all"`` (all of R^d, for a paired frozen network).
    radius : float
        Ball radius.
    center : tuple of float or None
        Ball centre; ``None`` is the origin.
    lo, hi : float
        Box bounds.
    """

    kind: str
    radius: float = 1.0
    center: tuple[float, ...] | None = None
    lo: float = -1.0
    hi: float = 1.0

    def build(self, dim: int) -> Domain | None:
        """The domain in input dimension ``dim`` (``None`` for ``all``); UsageError on a centre of another size."""
        if self.kind == "all":
            return None
        if self.kind == "box":
            return Box(np.full(dim, self.lo), np.full(dim, self.hi))
        if self.center is not None and len(self.center) != dim:
            raise UsageError(
                f"--domain centre has {len(self.center)} coordinates but the target takes d_0 = {dim} inputs"
            )
        return Ball(self.radius, None if self.center is None else np.array(self.center))

    def describe(self, dim: int) -> str:
        """A short human-readable description, e.g. ``ball of radius 1 centred at 0 in R^3``."""
        if self.kind == "all":
            return f"all of R^{dim} (paired frozen network, no bias shift)"
        if self.kind == "box":
            return f"box [{self.lo:g}, {self.hi:g}]^{dim}"
        centre = "0" if self.center is None else "(" + ", ".join(f"{c:g}" for c in self.center) + ")"
        return f"ball of radius {self.radius:g} centred at {centre} in R^{dim}"


def _number(text: str, what: str, domain: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--domain {domain!r}: {what} {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"--domain {domain!r}: {what} must be finite, got {text.strip()!r}")
    return value


def parse_domain(text: str) -> DomainSpec:
    """Parse ``--domain``: ``ball:R``, ``ball:R@c1,...,cd``, ``box:LO,HI`` or ``all``; UsageError otherwise."""
    kind, colon, rest = text.strip().partition(":")
    kind = kind.strip().lower()
    if kind == "all" and not colon:
        return DomainSpec("all")
    if kind == "ball":
        radius_text, at, centre_text = rest.partition("@")
        radius = _number(radius_text, "radius", text) if colon else 1.0
        if radius <= 0:
            raise UsageError(f"--domain {text!r}: the radius must be > 0, got {radius:g}")
        if not at:
            return DomainSpec("ball", radius=radius)
        centre = tuple(_number(c, "centre coordinate", text) for c in centre_text.split(","))
        return DomainSpec("ball", radius=radius, center=centre)
    if kind == "box" and colon:
        bounds = rest.split(",")
        if len(bounds) != 2:
            raise UsageError(f"--domain {text!r}: a box is box:LO,HI (two numbers), got {len(bounds)} value(s)")
        lo, hi = (_number(b, name, text) for b, name in zip(bounds, ("LO", "HI"), strict=True))
        if lo > hi:
            raise UsageError(f"--domain {text!r}: LO must be <= HI, got LO = {lo:g} > HI = {hi:g}")
        return DomainSpec("box", lo=lo, hi=hi)
    raise UsageError(f"--domain {text!r} is not understood; expected {DOMAIN_FORMS}")


# --------------------------------------------------------------------------------------------- files and networks


def check_out_path(out: str | os.PathLike, inputs: Mapping[str, str | os.PathLike], *, force: bool) -> Path:
    """Check that ``--out`` may be written; return it as a Path.

    It must never be one of ``inputs`` (option name -> path), compared after resolving symlinks and
    ``..`` and, when both exist, with `os.path.samefile` (hard links); ``force`` does not change
    that. An existing file is replaced only with ``force``; a directory, FIFO, device or socket
    (directly or through a symbolic link) never is (`verify.core.paths.node_problem`), and a
    dangling link into a missing directory is named with its target.
    """
    out = Path(out)
    for option, path in inputs.items():
        same = out.resolve() == Path(path).resolve()
        if not same and out.exists() and Path(path).exists():
            same = os.path.samefile(out, path)
        if same:
            raise UsageError(
                f"--out {str(out)!r} is the {option} file {str(path)!r}; inputs are never overwritten "
                "(not even with --force): choose another --out"
            )
    if out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a directory; give a file name such as tuned.pt")
    problem = node_problem(out) or missing_directory(out)
    if problem is not None:
        raise UsageError(problem)
    if out.is_symlink() and not out.exists() and not force:
        raise UsageError(f"--out {str(out)!r} is a dangling symbolic link; pass --force to replace the link")
    if out.exists() and not force:
        raise UsageError(f"--out {str(out)!r} exists; pass --force to replace it")
    return out


def _suggestion(d: Sequence[int], paired: bool) -> str:
    """frozen_mlp widths that work for a target of widths ``d`` in paper mode."""
    widths = [d[0]]
    for d_in, d_out in itertools.pairwise(d):
        widths += [(2 if paired else 1) * paper_width(d_out, d_in), d_out]
    return f"verify.nn.frozen_mlp({widths}{', paired=True' if paired else ''}) fits this target in paper mode"


_MISMATCH = {  # the reasons of `verify.core.blocks.widths_mismatch`, in the command's words
    "depth": (
        "the frozen network has {have} Linear -> BatchNorm1d layers but a target of depth L = {depth} needs 2L = {need}"
    ),
    "inputs": "the target takes {need} inputs but the frozen network takes {have}",
    "outputs": "the target gives {need} outputs but the frozen network gives {have}",
}


def _eps_list(text: str) -> list[float]:
    """``--bn-eps``: one number, or numbers separated by commas (one per BatchNorm layer)."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number or numbers separated by commas (one per BatchNorm), got {text!r}"
        ) from None


def _check_pair(d: Sequence[int], n: Sequence[int], paired: bool) -> None:
    """Refuse frozen widths ``n`` whose depth, input or output width cannot carry target widths ``d``.

    The conditions of `verify.core.blocks.widths_mismatch` (docs/design.md §1), checked on the
    rebuilt stacks in the command's words with a `verify.nn.frozen_mlp` hint, before a
    `verify.FrozenNetwork` exists: a stack with an odd number of Linear -> BatchNorm1d layers
    cannot become one. The narrow-even-layer case is left to the fit (its InfeasibleError).
    """
    mismatch = widths_mismatch(d, n)
    if mismatch is not None:
        kind, have, need = mismatch
        reason = _MISMATCH[kind].format(have=have, need=need, depth=len(d) - 1)
        raise UsageError(f"{reason}; {_suggestion(d, paired)}")


def _check_points(spec: DomainSpec, dim: int, seed: int) -> np.ndarray:
    """Fresh points for the torch forward check: in the domain, or at radii 1 and 1e6 for all of R^d."""
    rng = np.random.default_rng(seed + 1)
    domain = spec.build(dim)
    if domain is None:
        half = CHECK_POINTS // 2
        return np.vstack([Ball(radius, np.zeros(dim)).sample(half, rng) for radius in (1.0, 1e6)])
    return domain.resolve(dim).sample(CHECK_POINTS, rng)


# --------------------------------------------------------------------------------------------- command

_DESCRIPTION = """\
Solve for the BatchNorm weight and bias of a saved frozen network (Linear -> BatchNorm1d -> ReLU ...,
as verify.nn.frozen_mlp builds it) so that it computes a saved target ReLU network (Linear -> ReLU
-> ... -> Linear) exactly on --domain, check the result's certificate, and write the frozen state
dict with only the BatchNorm weight/bias replaced to --out.

Inputs are plain state dicts, torch.save(model.state_dict(), path) of an nn.Sequential, read with
torch.load(..., weights_only=True). A state dict does not record layers without parameters: each
gap in the layer indices between two Linear layers is read as a ReLU (eval-mode Dropout/Identity
may sit there too); any other activation there would make the result wrong. Nor does it record
BatchNorm's eps: --bn-eps (one value, or one per BatchNorm) must match the module the output
will be loaded into; the output says which eps every check assumed.

--domain:
  ball:R              the ball of radius R centred at 0 (default ball:1.0)
  ball:R@c1,...,cd    the ball of radius R centred at (c1, ..., cd)
  box:LO,HI           the box [LO, HI] in every coordinate
  all                 all of R^d: needs a paired frozen network, frozen_mlp(..., paired=True)
"""

_EPILOG = (
    THE_EPS_TRAP
    + """
example:
  python -m verify reconstruct --target target.pt --frozen frozen.pt --domain ball:1.0 --out tuned.pt

  # then, in Python, with the frozen module the file was saved from:
  frozen.load_state_dict(torch.load("tuned.pt", weights_only=True))
  frozen.eval()(x)   # equals target(x) for x in the domain, up to rounding

exit status: 0 on success, 1 if the certificate fails (nothing is written), 2 for a usage error
(missing or unsupported file, too narrow a frozen network, --out equal to an input or existing, or
--out a directory, FIFO, device or socket, which is never replaced).
"""
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=_DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", required=True, metavar="PT", help="state dict of the target Linear/ReLU network")
    parser.add_argument(
        "--frozen", required=True, metavar="PT", help="state dict of the frozen Linear/BatchNorm1d/ReLU network"
    )
    parser.add_argument("--out", required=True, metavar="PT", help="where to write the tuned frozen state dict")
    parser.add_argument("--domain", default="ball:1.0", metavar="SPEC", help=f"{DOMAIN_FORMS} (default: ball:1.0)")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="paper",
        help="paper: odd widths >= d_k*d_(k-1); minimal: >= d_k*(d_(k-1)-1)+1 (default: paper)",
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="auto",
        help="solver of the scale equation, docs/design.md §5 (default: auto)",
    )
    parser.add_argument(
        "--bound",
        type=float,
        metavar="C",
        help="the bound C of |gamma| <= C for --method box, which needs it (the smallest ||gamma|| inside the box "
        "is found, or the box is too small: exit status 2); refused with any other method, which would ignore it",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the certificate's sample points (default: 0)")
    parser.add_argument(
        "--rtol",
        type=float,
        default=1e-6,
        help="accuracy certified in the networks' dtype: error bound <= rtol * f_max, the target's largest output "
        "on the certificate's sample points (default: 1e-6; "
        "float32 networks usually need about 1e-3, or save them in float64)",
    )
    parser.add_argument(
        "--bn-eps",
        type=_eps_list,
        default=[1e-5],
        metavar="EPS",
        help="BatchNorm eps of the frozen network: one value for every BatchNorm, or one per BatchNorm "
        "separated by commas (default: 1e-5); a state dict does not record it, so it must match your module",
    )
    parser.add_argument("--force", action="store_true", help="replace --out if it exists (never an input file)")
    return parser


def _error(message: str, status: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def _run(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    if importlib.util.find_spec("torch") is None:
        raise UsageError(f"{PROG} needs PyTorch: pip install 'verify[torch]'")
    # The PyTorch edge, imported only now; verify.nn.fit_norm_layers is looked up at each run.
    from verify.nn import fit_norm_layers
    from verify.nn.fit import forward_error
    from verify.nn.modules import linear_widths
    from verify.nn.rebuild import frozen_module, layout_assumptions, target_module
    from verify.nn.state_dict import StateDictError, load_state_dict, tuned_state_dict, write_atomically

    spec = parse_domain(args.domain)
    if not math.isfinite(args.rtol) or args.rtol <= 0:
        raise UsageError(f"--rtol must be a positive finite number, got {args.rtol}")
    if any(not math.isfinite(e) or e < 0 for e in args.bn_eps):
        raise UsageError(f"--bn-eps must be finite numbers >= 0, got {','.join(f'{e:g}' for e in args.bn_eps)}")
    if args.bound is not None and args.method != "box":
        raise UsageError(f"--bound is the |gamma| <= C of --method box only; --method {args.method} would ignore it")
    if args.bound is None and args.method == "box":
        raise UsageError("--method box needs --bound C, the bound of |gamma| <= C (e.g. --bound 1e3)")
    if args.bound is not None and (not math.isfinite(args.bound) or args.bound <= 0):
        raise UsageError(f"--bound must be a positive finite number, got {args.bound}")
    eps = args.bn_eps[0] if len(args.bn_eps) == 1 else args.bn_eps
    inputs = {"--target": args.target, "--frozen": args.frozen}
    for option, path in inputs.items():
        if not Path(path).exists():
            raise UsageError(f"{option} {path!r}: no such file")
    out = check_out_path(args.out, inputs, force=args.force)
    try:
        target_state = load_state_dict(args.target, "--target")
        frozen_state = load_state_dict(args.frozen, "--frozen")
        target = target_module(target_state, f"--target {args.target!r}")
        frozen, norm_prefixes = frozen_module(frozen_state, f"--frozen {args.frozen!r}", eps=eps)
    except StateDictError as error:
        raise UsageError(str(error)) from None
    assumed = layout_assumptions(target_state, "--target") + layout_assumptions(frozen_state, "--frozen")
    d, n = linear_widths(target), linear_widths(frozen)
    _check_pair(d, n, spec.kind == "all")
    domain = spec.build(d[0])
    bound = {} if args.bound is None else {"bound": args.bound}
    try:
        result = fit_norm_layers(
            frozen, target, domain, mode=args.mode, method=args.method, seed=args.seed, rtol=args.rtol, **bound
        )
    except InfeasibleError as error:
        raise UsageError(f"the frozen network cannot reproduce the target: {error}") from None
    except CertificateError as error:
        return _error(f"{error}; nothing was written", status=1)
    except ValueError as error:
        paired = spec.kind == "all" and "paired" in str(error)
        hint = "; save a paired one: verify.nn.frozen_mlp(widths, paired=True)" if paired else ""
        raise UsageError(f"{error}{hint}") from None
    state = tuned_state_dict(frozen_state, frozen, norm_prefixes)
    points = _check_points(spec, d[0], args.seed)
    relative = forward_error(frozen, target, points)
    per_layer = args.bn_eps * len(norm_prefixes) if len(args.bn_eps) == 1 else args.bn_eps
    other = alternative(per_layer)
    elsewhere = copy.deepcopy(frozen)
    for module in elsewhere.modules():
        if hasattr(module, "running_var") and hasattr(module, "eps"):
            module.eps = other
    off = forward_error(elsewhere, target, points)
    try:
        write_atomically(state, out)
    except OSError as error:
        raise UsageError(f"could not write --out {str(out)!r}: {error.strerror or error}") from None
    except ValueError as error:  # the node changed since check_out_path: still never replaced
        raise UsageError(str(error).replace("out ", "--out ", 1)) from None

    certificate = result.certificate
    sampled = certificate.sampled
    arrow = " → ".join
    dtype = str(next(frozen.parameters()).dtype).removeprefix("torch.")
    target_dtype = str(next(target.parameters()).dtype).removeprefix("torch.")
    solvers = ", ".join(dict.fromkeys(b.solver for b in certificate.blocks))
    margin = f"; min activity margin {certificate.min_margin:.3g}" if math.isfinite(certificate.min_margin) else ""
    say(f"target       {args.target}: Linear/ReLU, widths {arrow(map(str, d))} ({target_dtype})")
    say(f"frozen       {args.frozen}: Linear/BatchNorm1d/ReLU, widths {arrow(map(str, n))} ({dtype})")
    eps_said = (
        f"{args.bn_eps[0]:g} in every BatchNorm"
        if len(args.bn_eps) == 1
        else ", ".join(f"{e:g}" for e in args.bn_eps) + " (one per BatchNorm)"
    )
    say(
        f"assumed      BatchNorm eps {eps_said} (--bn-eps): a state dict does not record eps, and the "
        "certificate and the torch check below hold for this eps only"
    )
    say(f"eps check    in {args.frozen}: {inferred(frozen_state, norm_prefixes, per_layer)}")
    for sentence in assumed:
        say(f"assumed      {sentence}")
    say(f"solved       mode {args.mode}, method {args.method} (solver: {solvers}); domain: {spec.describe(d[0])}")
    verdict = "holds" if certificate.holds else "FAILS"
    slope = f" + {certificate.error_slope:.3g}·max|x_i|" if certificate.error_slope else ""
    say(
        f"certificate  {verdict} in {certificate.dtype}: |g - f| <= {certificate.error_bound:.3g}{slope} on the "
        f"whole domain, {certificate.relative_error_bound:.3g} of the target's largest output on the sample points "
        f"(f_max {certificate.f_max:.3g}; rtol {certificate.rtol:g}), {certificate.bound_over_scale:.3g} of its "
        f"interval scale {certificate.scale:.3g}; "
        f"sampled max relative error {sampled.max_relative_error:.3g} on {sampled.points} points{margin}"
    )
    say(
        f"torch check  tuned module (assumed eps) vs target: max |g - f| / max |f| = {relative:.3g} on "
        f"{CHECK_POINTS} points; with eps {other:g} in every BatchNorm instead it would be {off:.3g} (THE EPS TRAP)"
    )
    say(f"wrote        {out} (BatchNorm weight and bias of {len(norm_prefixes)} layers; all else as in {args.frozen})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m verify reconstruct``; return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments after ``reconstruct`` (default: ``sys.argv[2:]``); see ``--help``.

    Returns
    -------
    int
        0 on success (``--out`` written), 1 if the certificate fails (nothing written), 2 for a
        usage error, 130 when interrupted (SIGINT), 143 when terminated (SIGTERM); every error is
        one ``error: …`` line on stderr.
    """
    arguments = list(sys.argv[2:] if argv is None else argv)
    try:
        args = _parser().parse_args(arguments)
    except SystemExit as exit_:  # --help, or argparse's own usage error (already printed)
        return 0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 2
    handler = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return _run(args, print)
    except UsageError as error:
        return _error(str(error))
    except KeyboardInterrupt:  # SIGINT (Ctrl-C)
        return _error(f"interrupted; {_INTERRUPTED}", status=130)
    except _Terminated:
        return _error(f"terminated (SIGTERM); {_INTERRUPTED}", status=143)
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, handler)


_INTERRUPTED = "--out is written completely or not at all (no temporary file is left behind)"


class _Terminated(BaseException):
    """SIGTERM as an exception, so that a write in progress removes its temporary file on the way out."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated
