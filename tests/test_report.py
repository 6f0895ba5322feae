"""The verification job (``python -m verify``, `verify.job.runner`) on tiny grids: verdicts, files, exit codes."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import verify
from verify.__main__ import main
from verify.job import registry
from verify.job.claim import MAX_FAILURES, Claim, by_depth, first_failures
from verify.job.claims import exact as _exact
from verify.job.claims import properties as _properties
from verify.job.claims import tight as _tight
from verify.job.claims.tight import SEPARATION, khatri_rao_residual, minimal_system_separation
from verify.job.config import DOMAIN_KINDS, Config
from verify.job.report import write_report
from verify.job.runner import run_claims

TINY = Config(architectures=((2, 3), (3, 2, 2)), seeds=(0,), points=16, properties=False, only=("exact/*", "tight/*"))
"""Two targets, one seed, every mode and domain: about a tenth of a second (sparse claims: see test_sparse_claims)."""


def _figures_without_times(claims: list[Claim]) -> list[dict]:
    def strip(value: object) -> object:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "seconds"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return [strip(c.to_dict()) for c in claims]


@pytest.fixture(scope="module")
def tiny_claims() -> list[Claim]:
    return run_claims(TINY)


def test_tiny_grid_passes(tiny_claims: list[Claim]) -> None:
    names = [c.name for c in tiny_claims]
    expected = [f"exact/{m}/{k}" for m in verify.MODES for k in DOMAIN_KINDS] + [f"tight/{m}" for m in verify.MODES]
    assert names == expected
    for claim in tiny_claims:
        assert claim.passed, (claim.name, claim.failures)
        assert claim.failures == []
    exact = tiny_claims[0].figures
    assert exact["cases"] == exact["passed"] == exact["certificates_hold"] == 2
    assert 0 <= exact["max_relative_error"] < 1e-10
    assert exact["max_error_over_tolerance"] <= 1


def test_tightness_counts_and_skips(tiny_claims: list[Claim]) -> None:
    """Blocks whose reduced width would be 0 are skipped (minimal width of a d_in = 1 block is 1), not tested."""
    paper = next(c for c in tiny_claims if c.name == "tight/paper").figures
    minimal = next(c for c in tiny_claims if c.name == "tight/minimal").figures
    assert paper["blocks"] == 3 and paper["skipped_blocks"] == 0  # widths (2,3) and (3,2,2): 6, 6 and 4 neurons
    assert minimal["blocks"] == 3 and minimal["skipped_blocks"] == 0
    for figures in (paper, minimal):
        assert figures["refused"] == figures["unsolvable"] == figures["blocks"]
        assert figures["min_evidence"] > SEPARATION


def test_run_is_deterministic(tiny_claims: list[Claim]) -> None:
    assert _figures_without_times(run_claims(TINY)) == _figures_without_times(tiny_claims)


def test_report_files(tiny_claims: list[Claim], tmp_path: Path) -> None:
    markdown, report = write_report(tiny_claims, tmp_path / "out", TINY, {"command": "python -m verify"})
    assert markdown == tmp_path / "out" / "verify.md" and report == tmp_path / "out" / "verify.json"
    document = json.loads(report.read_text(encoding="utf-8"))  # strict JSON: no NaN or Infinity
    assert document["passed"] is True
    assert isinstance(document["claims"], list) and len(document["claims"]) == len(tiny_claims)
    for entry in document["claims"]:
        assert isinstance(entry["name"], str)
        assert entry["passed"] is True
        assert entry["command"].startswith("python -m verify")
        assert isinstance(entry["figures"], dict)
    text = markdown.read_text(encoding="utf-8")
    assert text.startswith("# Verification report")
    for claim in tiny_claims:
        assert claim.name in text and f"`{claim.command}`" in text
    for table in re.split(r"\n(?!\|)", text):  # every row of a table has as many (unescaped) cells as its header
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in table.splitlines() if row.startswith("|")}
        assert len(widths) <= 1, table


def test_failing_exactness_fails_the_claim(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A tolerance no computation can meet: every case fails, with a reason and a reproducer."""
    monkeypatch.setattr(_exact, "evaluation_tolerance", lambda *args: -1.0)
    config = Config(architectures=((2, 3),), seeds=(0,), points=8, properties=False, only=("exact/*",))
    claims = run_claims(config)
    assert claims and not any(c.passed for c in claims)
    failure = claims[0].failures[0]
    assert "exceeds the rounding tolerance" in failure["reason"] and failure["reproduce"].startswith("python -c")
    _, report = write_report(claims, tmp_path, config)
    document = json.loads(report.read_text(encoding="utf-8"))
    assert document["passed"] is False and document["claims"][0]["passed"] is False
    assert document["claims"][0]["failures"][0]["reproduce"] == failure["reproduce"]


def test_tightness_claimed_at_a_feasible_width_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Shift the claimed bound up by one: 'one below' is then the true minimal width, which works."""
    monkeypatch.setattr(_tight, "minimal_width", lambda d_out, d_in: verify.minimal_width(d_out, d_in) + 1)
    tiny = TINY.architectures
    monkeypatch.setattr(Config, "quick", classmethod(lambda cls, seeds=3, **options: cls(tiny, (0,), **options)))
    (claim,) = run_claims(Config(architectures=((3, 2),), seeds=(0,), properties=False, only=("tight/minimal",)))
    assert claim.status == "failed"
    assert "returned a result" in claim.failures[0]["reason"]
    assert "has shape" in claim.failures[0]["reason"]  # the homogeneous system is no longer square
    assert main(["--workers", "1", "--only", "tight/minimal", "--seeds", "1", "--out", str(tmp_path)]) == 1
    assert "FAIL" in capsys.readouterr().out
    document = json.loads((tmp_path / "verify.json").read_text(encoding="utf-8"))
    assert document["passed"] is False and [c["passed"] for c in document["claims"]] == [False]


def test_exception_in_a_case_is_a_failure_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(verify, "reconstruct", broken)
    claims = run_claims(Config(architectures=((2, 2),), seeds=(0,), points=8, properties=False, only=("exact/*",)))
    assert all(c.status == "failed" for c in claims)
    assert "RuntimeError: boom" in claims[0].failures[0]["reason"]


def test_tightness_evidence_separates_solvable_from_unsolvable() -> None:
    """At the mode's own width the evidence is rounding-small; one below it is far above SEPARATION."""
    rng = np.random.default_rng(0)
    d_out, d_in = 3, 4
    w = rng.standard_normal((d_out, d_in))
    for n, expect_solvable in ((d_out * d_in, True), (d_out * d_in - 1, False)):
        a, b = rng.standard_normal((d_out, n)), rng.standard_normal((n, d_in))
        residual = khatri_rao_residual(a, b, w)
        definition = np.einsum("ai,ib->abi", a, b).reshape(d_out * d_in, n)  # column i = vec(a_i b_iᵀ)
        gamma = np.linalg.lstsq(definition, w.reshape(-1), rcond=None)[0]
        assert residual == pytest.approx(np.linalg.norm(definition @ gamma - w.reshape(-1)) / np.linalg.norm(w))
        assert (residual < 1e-12) if expect_solvable else (residual > SEPARATION)
    n = verify.minimal_width(d_out, d_in) - 1
    ratio, shape = minimal_system_separation(rng.standard_normal((d_out, n)), rng.standard_normal((n, d_in)), w)
    assert shape == (d_out * d_in, d_out + n) and shape[0] == shape[1]
    assert ratio > SEPARATION
    n = verify.minimal_width(d_out, d_in)
    ratio, shape = minimal_system_separation(rng.standard_normal((d_out, n)), rng.standard_normal((n, d_in)), w)
    assert shape[1] == shape[0] + 1 and ratio == 0.0  # more unknowns than equations: always solvable


def test_properties_unavailable_is_skipped_not_passed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_properties, "_properties_dir", lambda: None)
    claim = _properties.run_properties()
    assert claim.status == "skipped" and not claim.passed
    assert "not a source checkout" in claim.figures["reason"]
    assert main(["--only", "properties", "--out", str(tmp_path)]) == 1
    document = json.loads((tmp_path / "verify.json").read_text(encoding="utf-8"))
    assert document["claims"][0]["status"] == "skipped" and document["claims"][0]["passed"] is False


@pytest.mark.parametrize(
    ("body", "status", "counts"),
    [
        pytest.param("def test_ok():\n    pass\n", "passed", {"passed": 1, "failed": 0}, id="passing"),
        pytest.param(
            "def test_ok():\n    pass\n\ndef test_bad():\n    assert False\n",
            "failed",
            {"passed": 1, "failed": 1},
            id="failing",
        ),
        pytest.param("", "failed", {"passed": 0, "failed": 0}, id="empty"),
    ],
)
def test_properties_subprocess(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, body: str, status: str, counts: dict[str, int]
) -> None:
    """A stand-in property package: pytest runs in a subprocess and its counts are recorded."""
    package = tmp_path / "properties"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "test_stand_in.py").write_text(body)
    monkeypatch.setattr(_properties, "_properties_dir", lambda: package)
    monkeypatch.delenv("VERIFY_HYPOTHESIS_PROFILE", raising=False)
    claim = _properties.run_properties(timeout=120)
    assert claim.status == status
    assert claim.figures["profile"] == "thorough"
    assert {k: claim.figures[k] for k in counts} == counts
    assert len(claim.figures["failing_tests"]) == counts["failed"]


def test_pytest_summary_parsing() -> None:
    lines = ["....F", "FAILED properties/test_x.py::test_y", "1 failed, 11 passed, 2 skipped, 1 error in 3.10s"]
    counts = _properties._pytest_counts(lines)
    assert counts == {"passed": 11, "failed": 1, "errors": 1, "skipped": 2, "xfailed": 0, "xpassed": 0}


def test_main_writes_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reports"
    assert main(["--workers", "1", "--only", "tight/paper", "--seeds", "1", "--no-properties", "--out", str(out)]) == 0
    assert (out / "verify.md").is_file()
    document = json.loads((out / "verify.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in document["claims"]] == ["tight/paper"]
    assert document["claims"][0]["command"] == "python -m verify --seeds 1 --only tight/paper"
    assert "PASS" in capsys.readouterr().out


def test_main_list_and_no_match(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list", "--no-properties"]) == 0
    listed = capsys.readouterr().out.split()
    assert "exact/minimal/box-far" in listed and "tight/paper" in listed and "properties" not in listed
    assert main(["--only", "no-such-claim"]) == 2


def test_help_via_subprocess() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "verify", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    for option in ("--out", "--seeds", "--quick", "--full", "--no-properties", "--only", "--list", "Exit status"):
        assert option in done.stdout


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"architectures": ()}, "architectures must list", id="no-architectures"),
        pytest.param({"architectures": ((3,),)}, "architectures must hold", id="one-width"),
        pytest.param({"architectures": ((3, 0),)}, "architectures must hold", id="zero-width"),
        pytest.param({"seeds": ()}, "seeds must be", id="no-seeds"),
        pytest.param({"seeds": (-1,)}, "seeds must be", id="negative-seed"),
        pytest.param({"modes": ("exact",)}, "modes must be", id="unknown-mode"),
        pytest.param({"domains": ("sphere",)}, "domains must be", id="unknown-domain"),
        pytest.param({"points": 1}, "points must be", id="one-point"),
    ],
)
def test_invalid_config(kwargs: dict, message: str) -> None:
    arguments = {"architectures": ((2, 2),)} | kwargs
    with pytest.raises(ValueError, match=message):
        Config(**arguments)


@pytest.fixture
def toy_claim():
    """A claim family registered by this test only (and removed after it): ``toy/<mode>``."""

    def summary(claim: Claim) -> str:
        return f"the answer is {claim.figures['answer']}"

    def table(claims: list[Claim]) -> registry.Table:
        rows = [[c.name, str(c.figures["answer"])] for c in claims]
        return registry.Table(["toy", "answer"], rows, title="Toy answers", labels=1)

    def section(claims: list[Claim], config: Config) -> list:
        return [registry.Paragraph("Toy section text."), table(claims)]

    @registry.register(
        "toy/{mode}",
        axes=lambda config: {"mode": config.modes},
        order=15,
        statement="A toy claim: the answer is 42.",
        summary=summary,
        sizes={"quick": {"answer": 42}, "full": {"answer": 43}},
        table=table,
        section=registry.Section("Toy answers", 15, section),
    )
    def run(config: Config, name: str, sweep: object) -> Claim:
        answer = config.sizes_for("toy")["answer"]
        return Claim(name, "the toy claim holds", "passed", {"answer": answer}, config.command(name))

    yield "toy/{mode}"
    registry.unregister("toy/{mode}")


def test_a_registered_claim_is_listed_run_and_rendered_everywhere(
    toy_claim: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One registration is all a new claim needs: --help, --list, console, markdown and JSON show it."""
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    assert "toy/<mode>" in capsys.readouterr().out
    assert main(["--list", "--no-properties"]) == 0
    listed = capsys.readouterr().out.split()
    at = listed.index("toy/paper")  # order 15: after the exactness claims (10), before the tightness ones (20)
    assert listed[at - 1 : at + 3] == ["exact/minimal/box-far", "toy/paper", "toy/minimal", "tight/paper"]
    out = tmp_path / "reports"
    assert main(["--workers", "1", "--only", "toy/*", "--no-properties", "--out", str(out)]) == 0
    console = capsys.readouterr().out
    assert "Toy answers" in console and "the answer is 42" in console and "toy/minimal" in console
    document = json.loads((out / "verify.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in document["claims"]] == ["toy/paper", "toy/minimal"]
    assert document["claims"][0]["figures"] == {"answer": 42} and document["claims"][0]["plots"] == []
    assert document["claims"][0]["command"] == "python -m verify --only toy/paper"
    text = (out / "verify.md").read_text(encoding="utf-8")
    assert "## Toy answers\n\nToy section text.\n\n| toy | answer |" in text
    assert "| toy/paper | PASS | the answer is 42 |" in text and "- **toy/paper**: the toy claim holds." in text


def test_config_sizes_override_what_a_claim_declares(toy_claim: str) -> None:
    config = Config(architectures=((2, 2),), seeds=(0,), properties=False, only=("toy/paper",))
    assert [c.figures["answer"] for c in run_claims(config)] == [42]
    assert [c.figures["answer"] for c in run_claims(dataclasses.replace(config, grid="full"))] == [43]
    shrunk = dataclasses.replace(config, sizes={"toy": {"answer": 7}})
    assert [c.figures["answer"] for c in run_claims(shrunk)] == [7]
    with pytest.raises(ValueError, match="has no sizes"):
        run_claims(dataclasses.replace(config, sizes={"toy": {"answr": 7}}))
    with pytest.raises(ValueError, match="names no claim family"):
        run_claims(dataclasses.replace(config, sizes={"tyo": {"answer": 7}}))


def test_an_unregistered_claim_is_gone() -> None:
    config = Config(architectures=((2, 2),), properties=False)
    assert not any(name.startswith("toy/") for name in config.claim_names())


def test_summary_templates_take_the_report_format_specs() -> None:
    """`registry.format_figures`: ``sci``/``sciN`` as the tables write figures, and value operations before a spec."""
    text = registry.format_figures(
        "{a:sci} {b:sci0} {c:sci} {n:sci} {r:max:g} {s:ms:.1f} {k:len} {m[fit][e]:.2f} {x:.1e}",
        a=2.8e-10,
        b=1e-6,
        c=float("nan"),
        n=7,
        r=[1.0, 1e9, 1e3],
        s=0.01234,
        k=[(2, 2), (3, 3)],
        m={"fit": {"e": -0.456}},
        x=1234.5,
    )
    assert text == "2.80e-10 1e-06 – 7 1e+09 12.3 2 -0.46 1.2e+03"


def test_a_declared_section_folds_its_intro_and_is_left_out_without_rows() -> None:
    def table(claims: list[Claim]) -> registry.Table:
        return registry.Table(["claim"], [[c.name] for c in claims if c.rows])

    image = registry.Image("width", "a figure")
    section = registry.Section("Toy", 1, image=image, intro=("Wrapped\n   prose, {config.points} points.", "Two."))
    section = dataclasses.replace(section, table=table)
    config = Config(architectures=((2, 2),), points=8, properties=False)
    with_rows = Claim("toy/paper", "s", "passed", {}, "cmd", rows=[{"x": 1}])
    assert section.blocks([with_rows], config) == [
        image,
        registry.Paragraph("Wrapped prose, 8 points."),
        registry.Paragraph("Two."),
        registry.Table(["claim"], [["toy/paper"]]),
    ]
    assert section.blocks([dataclasses.replace(with_rows, rows=[])], config) == []
    with pytest.raises(ValueError, match="either body or"):
        registry.Section("Toy", 1, body=lambda claims, config: [], intro=("x",))


def test_a_claim_keeps_its_first_failures_and_rows_by_depth() -> None:
    cases = [{"passed": i % 3 != 0, "i": i, "widths": [2] * (2 + i % 2)} for i in range(200)]
    kept = first_failures(cases, lambda c: {"case": c["i"]})
    assert [f["case"] for f in kept] == [3 * k for k in range(MAX_FAILURES)]
    assert first_failures(cases, lambda c: {"case": c["i"]}, failing=lambda c: c["i"] == 7) == [{"case": 7}]
    rows = by_depth(cases, lambda group: {"cases": len(group)})
    assert rows == [{"depth": 1, "cases": 100}, {"depth": 2, "cases": 100}]
