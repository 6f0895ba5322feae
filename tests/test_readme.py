"""Every ```python block of README.md runs as written.

The blocks run in the order the README gives them, in one namespace for the whole file (the README
is a tour: a later block may use what an earlier one defined). A block that truly cannot run here
(it needs a GPU, say) is marked by an HTML comment ``<!-- no-test -->`` on the line right before it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP = "<!-- no-test -->"
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)


def blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(line, code, skipped)`` for every python block of ``text``; an indented block is dedented."""
    found = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        indent = match.group("indent")
        code = "".join(row.removeprefix(indent) for row in match.group("code").splitlines(keepends=True))
        found.append((line, code, before == SKIP))
    return found


def test_the_block_reader_finds_fenced_and_indented_blocks_and_the_marker() -> None:
    text = "a\n```python\nx = 1\n```\n- item\n\n  ```python\n  y = x\n  ```\n<!-- no-test -->\n```python\nz\n```\n"
    assert blocks(text) == [(2, "x = 1\n", False), (7, "y = x\n", False), (11, "z\n", True)]


def test_every_readme_python_block_runs_as_written() -> None:
    found = blocks(README.read_text(encoding="utf-8"))
    assert len(found) >= 5, "the README's python blocks were not found"
    namespace: dict[str, object] = {"__name__": "readme"}
    with torch.random.fork_rng(devices=[]):  # the blocks seed torch's global generator; other tests keep theirs
        for line, code, skipped in found:
            if skipped:
                continue
            try:
                exec(compile(code, f"README.md:{line}", "exec"), namespace)
            except Exception as error:  # named by its line, so the failing block is found at once
                pytest.fail(f"the README block at line {line} raised {type(error).__name__}: {error}")
