"""``python -m verify``: check every claim of docs/design.md numerically, print it, write the report.

`main` parses the command line; ``python -m verify reconstruct ...`` goes to
`verify.cli.reconstruct.main`. The claims, their ``--help`` text and ``--list`` come from the
registry of the verification job (`verify.job.registry`); the work is done by `verify.job.runner`
and `verify.job.report`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from verify.core.paths import node_kind, node_problem
from verify.job import registry
from verify.job.config import Config
from verify.job.progress import Sweep
from verify.job.render_console import make_console, render_console
from verify.job.report import write_report
from verify.job.runner import run_claims
from verify.job.sweeps import Runner

__all__ = ["main"]

_INTRO = """\
Check numerically, on a fixed grid of random targets, every claim of the construction (docs/design.md),
print the verdicts as tables, and write OUT/verify.md, OUT/verify.json and OUT/figures/*.png.
Cases run on a local process pool (--workers) or a Dask cluster (--scheduler).
"""

_OUTRO = """
Seeds are fixed (target s, frozen network 1000+s, fresh points 2000+s), so runs are reproducible.
Exit status: 0 iff every selected claim passed, 1 otherwise (a skipped claim is not a pass),
2 for a usage error or an --only that matches no claim.
"""

_EPILOG = """\
examples:
  python -m verify                      quick grid, then the property suite (budget profile)
  python -m verify --no-properties      numeric claims only
  python -m verify --only 'tight/*'     the tightness claims only
  python -m verify --full --seeds 8     bigger grid, 8 seeds, thorough property suite
  python -m verify --scheduler tcp://10.0.0.5:8786
                                        sweeps on a Dask cluster
  python -m verify reconstruct --target target.pt --frozen frozen.pt --domain ball:1.0 --out tuned.pt
                                        tune a saved frozen network (see: python -m verify reconstruct --help)
"""

_NAME_COLUMN = 23
"""Width of the claim-name column of ``--help``."""


def _description() -> str:
    """The ``--help`` description: what the job does, then every registered claim family and its statement."""
    lines = [_INTRO, "Claims:"]
    indent = " " * (2 + _NAME_COLUMN)
    for spec in registry.specs():
        first, *rest = spec.statement.splitlines() or [""]
        if len(spec.display) < _NAME_COLUMN - 1:
            lines.append(f"  {spec.display:<{_NAME_COLUMN}}{first}")
        else:  # a long name gets the statement on its own lines
            lines += [f"  {spec.display}", indent + first]
        lines += [indent + line for line in rest]
    return "\n".join(lines) + "\n" + _OUTRO


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


MAX_SEEDS = 1000
"""The most seeds ``--seeds`` takes: every seed is one more pass over each claim's whole grid."""


def _seed_count(text: str) -> int:
    value = _positive(text)
    if value > MAX_SEEDS:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_SEEDS} seeds (each one is a full pass over every claim's grid), got {value}"
        )
    return value


REPORT_FILES = ("verify.md", "verify.json")
"""The files `verify.job.report.write_report` writes into ``--out``."""


def _check_out(out: str) -> str | None:
    """Why the report cannot be written into ``out`` (a file, or a place that cannot be created or
    written), or None; checked before any claim runs. Creates the directory as the report would."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        kind = node_kind(path)
        kind = "a file" if kind == "a regular file" else kind
        return f"--out {out} is {kind}, not a directory; name a directory for verify.md, verify.json and figures/"
    if path.is_dir():
        for name in REPORT_FILES:
            problem = node_problem(path / name, f"--out {out}: the report file")
            if problem is not None:
                return problem
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        return f"cannot write the report into --out {out}: {error.strerror or error}; name a writable directory"
    return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m verify",
        description=_description(),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out", default="reports", metavar="DIR", help="directory of verify.md and verify.json (default: reports)"
    )
    grid = parser.add_mutually_exclusive_group()
    grid.add_argument(
        "--quick",
        dest="grid",
        action="store_const",
        const="quick",
        help="the default grid: all 36 depth-1 pairs of widths {1,2,3,5,8,12} and 20 deeper targets, "
        "512 fresh points per case, property suite under the 'budget' Hypothesis profile (200 examples "
        "per property); within 5 minutes on 2 cores",
    )
    grid.add_argument(
        "--full",
        dest="grid",
        action="store_const",
        const="full",
        help="a bigger grid: the quick one plus 48 random deeper targets, 2048 fresh points per case "
        "and bigger sparse, exact and speed sizes (about 6-7 minutes of numerics on 2 cores), property "
        "suite under the 'thorough' profile (1000 examples per property, over 10 minutes)",
    )
    parser.set_defaults(grid="quick")
    parser.add_argument(
        "--seeds",
        type=_seed_count,
        metavar="N",
        help=f"use seeds 0 … N-1, N <= {MAX_SEEDS} (default: 3 with --quick, 5 with --full)",
    )
    parser.add_argument("--no-properties", action="store_true", help="do not run the Hypothesis property suite")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="GLOB",
        help="run only the claims whose name matches GLOB (repeatable), e.g. 'exact/paper/*' or properties",
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="local process pool size (default: the CPU cores available; a larger N is capped at them, with a "
        "note; 1 runs every case in this process)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the sweeps on a Dask distributed cluster, e.g. tcp://10.0.0.5:8786 (start one with "
        "`dask scheduler` and `dask worker ADDRESS`; workers need verify installed). Results are identical "
        "to the local run: every case is seeded",
    )
    parser.add_argument("--list", action="store_true", help="list the claim names and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the verification job; return the exit status (0 iff every selected claim passed).

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments without the program name (default: ``sys.argv[1:]``); see ``--help``.

    Returns
    -------
    int
        0 if every selected claim passed, 1 if any failed or was skipped, 2 if no claim was selected.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["reconstruct"]:
        from verify.cli.reconstruct import main as reconstruct_main

        return reconstruct_main(arguments[1:])
    args = _parser().parse_args(arguments)
    options = {"properties": not args.no_properties, "only": tuple(args.only)}
    seeds = {} if args.seeds is None else {"seeds": args.seeds}
    config = Config.full(**seeds, **options) if args.grid == "full" else Config.quick(**seeds, **options)
    names = [name for name in config.claim_names() if config.selected(name)]
    if args.list:
        print("\n".join(config.claim_names()))
        return 0
    if not names:
        print(f"no claim matches --only {' '.join(args.only)}; see --list", file=sys.stderr)
        return 2

    console = make_console()
    try:
        runner = Runner(scheduler=args.scheduler, workers=args.workers)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if runner.capped is not None:
        print(f"note: {runner.capped}", file=sys.stderr)
    problem = _check_out(args.out)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    console.print(f"checking {len(names)} claims; cases run on {runner.describe()}", highlight=False)
    try:
        runner.connect()
        with Sweep(runner, console) as sweep:
            claims = run_claims(config, sweep=sweep)
    except (OSError, TimeoutError) as error:  # the Dask scheduler could not be reached
        print(f"error: {error}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - start
    command = shlex.join(["python", "-m", "verify", *arguments])
    numeric = sum(c.seconds for c in claims if registry.spec_of(c.name).numeric)
    meta = {"command": command, "wall_time_s": wall, "numeric_time_s": numeric}
    render_console(claims, console)
    markdown, report = write_report(claims, args.out, config, meta)
    failed = [c.name for c in claims if not c.passed]
    verdict = "[bold green]PASS[/]" if not failed else f"[bold red]FAIL[/] ({', '.join(failed)})"
    console.print(
        f"{verdict}: {len(claims) - len(failed)}/{len(claims)} claims passed in {wall:.1f} s "
        f"(numeric claims {numeric:.1f} s); wrote {markdown} and {report}",
        highlight=False,
    )
    return 0 if not failed else 1
