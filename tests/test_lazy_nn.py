"""``verify.nn`` is reachable as an attribute of ``verify``, and ``import verify`` alone does not import torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=os.sep, check=False
    )


def test_import_verify_does_not_import_torch() -> None:
    run = _run("import sys, verify; print('torch' in sys.modules, 'verify.nn' in sys.modules)")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False", "False"]


def test_verify_nn_is_an_attribute_imported_on_first_use() -> None:
    pytest.importorskip("torch")
    code = (
        "import sys, verify; fit = verify.nn.fit_norm_layers; "
        "from verify.nn import fit_norm_layers; "
        "print(fit is fit_norm_layers, 'torch' in sys.modules, 'nn' in dir(verify))"
    )
    run = _run(code)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "True", "True"]


def test_an_unknown_attribute_still_raises_attribute_error() -> None:
    run = _run("import verify\ntry:\n    verify.nope\nexcept AttributeError as e:\n    print(e)")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "module 'verify' has no attribute 'nope'"
