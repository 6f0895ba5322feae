"""Every section the code and docs cite in docs/design.md exists, and nothing cites notes outside the project.

A reference is a ``§N`` or ``§N.M`` (also ranges such as ``§1–2``, and lists such as ``§2, §6``) that
follows a mention of ``docs/design.md`` on the same line of a tracked ``*.py``, ``*.md`` or ``*.toml``
file; inside docs/design.md itself every ``§N`` refers to its own sections. ``N`` must be a heading
``## N. Title`` and ``N.M`` a heading ``### N.M Title`` of docs/design.md. The project cites only its
own documents: notes kept outside the repository are not to be named.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = "docs/design.md"
SUFFIXES = (".py", ".md", ".toml")
SKIPPED_DIRS = {".git", ".nox", "build", "dist", "__pycache__", ".venv", "reports"}

# Built from pieces so that this file does not contain (and so does not flag) the strings it forbids.
FORBIDDEN = ("DESIGN" + " §", "DESIGN" + ".md", ".." + "/shared")

SECTION = re.compile(r"^##\s+(\d+)\.\s+\S")
SUBSECTION = re.compile(r"^###\s+(\d+\.\d+)\.?\s+\S")
REFERENCE = re.compile(r"§\s*(\d+(?:\.\d+)?)(?:\s*[–-]\s*(\d+(?:\.\d+)?))?")


@dataclass(frozen=True)
class Reference:
    """One cited section: ``section`` (``"2"`` or ``"2.1"``) at ``path:line``, with the line's text."""

    path: str
    line: int
    section: str
    text: str


def repository_files(root: Path = ROOT) -> list[Path]:
    """The ``*.py``, ``*.md`` and ``*.toml`` files of the repository that git tracks (or would track).

    ``git ls-files --cached --others --exclude-standard`` lists tracked files and new files that are
    not ignored, so a reference in a file not yet added is checked too. Without git, the tree is
    walked, skipping virtualenvs, build output and caches.
    """
    try:
        listing = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=root,
            capture_output=True,
            check=True,
            text=True,
        ).stdout
        names = [name for name in listing.split("\0") if name]
        files = [root / name for name in names]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in root.rglob("*") if not SKIPPED_DIRS.intersection(p.relative_to(root).parts)]
    return sorted(p for p in files if p.suffix in SUFFIXES and p.is_file())


def headings(text: str) -> tuple[list[str], list[str]]:
    """Numbers of the ``## N.`` sections and of the ``### N.M`` subsections of a Markdown text, in order.

    Lines inside fenced code blocks are not headings.
    """
    sections, subsections = [], []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        if match := SECTION.match(line):
            sections.append(match[1])
        elif match := SUBSECTION.match(line):
            subsections.append(match[1])
    return sections, subsections


def _expand(first: str, last: str | None) -> list[str]:
    """``§first–last`` as the sections it names: every integer in an integer range, else both ends."""
    if last is None:
        return [first]
    if "." not in first and "." not in last and int(first) <= int(last):
        return [str(n) for n in range(int(first), int(last) + 1)]
    return [first, last]


def references_in(text: str, path: str, *, own: bool = False) -> list[Reference]:
    """Every section of docs/design.md cited in ``text`` (the contents of the file ``path``).

    On each line, the ``§`` references after the first mention of docs/design.md count; with ``own``
    (the text *is* docs/design.md) every ``§`` reference on every line counts.
    """
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        start = 0 if own else line.find(DOC)
        if start < 0:
            continue
        for match in REFERENCE.finditer(line, start):
            for section in _expand(match[1], match[2]):
                found.append(Reference(path, number, section, line.strip()))
    return found


def forbidden_mentions(text: str, path: str) -> list[str]:
    """``path:line`` messages for every mention of notes outside the project (see `FORBIDDEN`)."""
    return [
        f"{path}:{number}: mentions {word!r} (cite docs/design.md, the project's own notes): {line.strip()}"
        for number, line in enumerate(text.splitlines(), start=1)
        for word in FORBIDDEN
        if word in line
    ]


def dangling(references: Iterable[Reference], sections: Iterable[str], subsections: Iterable[str]) -> list[str]:
    """``path:line`` messages for references to sections that docs/design.md does not have."""
    known = set(sections) | set(subsections)
    listed = ", ".join(sorted(known, key=lambda n: tuple(int(p) for p in n.split("."))))
    return [
        f"{r.path}:{r.line}: cites {DOC} §{r.section}, which has no heading "
        f"'{'###' if '.' in r.section else '##'} {r.section}{'' if '.' in r.section else '.'} …' "
        f"(it has {listed}): {r.text}"
        for r in references
        if r.section not in known
    ]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


# ------------------------------------------------------------------------------------------ the repository


@pytest.fixture(scope="module")
def design() -> tuple[list[str], list[str]]:
    """The section and subsection numbers of the repository's docs/design.md."""
    path = ROOT / DOC
    assert path.is_file(), f"{DOC} is missing, but the code cites it"
    return headings(_read(path))


def test_design_sections_are_numbered_in_order(design: tuple[list[str], list[str]]) -> None:
    """docs/design.md has sections ``## 1.`` … ``## N.`` in order (N >= 7), each subsection under its section."""
    sections, subsections = design
    assert sections == [str(n) for n in range(1, len(sections) + 1)], f"sections out of order: {sections}"
    assert len(sections) >= 7, f"the code cites §1 … §7, but {DOC} has sections {sections}"
    for sub in subsections:
        assert sub.split(".")[0] in sections, f"subsection {sub} of {DOC} has no section {sub.split('.')[0]}"


def test_every_cited_section_exists(design: tuple[list[str], list[str]]) -> None:
    """Every ``docs/design.md §N`` in the repository (and every ``§N`` in the document) names a heading."""
    references = []
    files = repository_files()
    assert any(p.name == "README.md" for p in files)  # the scan sees the repository at all
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        references += references_in(_read(path), relative, own=relative == DOC)
    assert len(references) > 10, "the scan found almost no references; is the pattern broken?"
    problems = dangling(references, *design)
    assert not problems, f"{len(problems)} reference(s) to missing sections:\n" + "\n".join(problems)


def test_no_file_cites_notes_outside_the_project() -> None:
    """No tracked file names design notes kept outside the repository."""
    problems = []
    for path in repository_files():
        problems += forbidden_mentions(_read(path), path.relative_to(ROOT).as_posix())
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------ the checker itself

_DOCUMENT = """\
# Title

Lead, no number.

## 1. The two networks

```text
## 9. not a heading: inside a code block
```

## 2. One block

### 2.1 A subsection

See §1 and §2.1.
"""


def test_checker_reads_headings() -> None:
    """Numbered ``##`` and ``###`` headings are read; unnumbered ones and code blocks are not."""
    assert headings(_DOCUMENT) == (["1", "2"], ["2.1"])


def test_checker_reads_references() -> None:
    """Single sections, subsections, ranges and lists after a docs/design.md mention are all read."""
    line = f"x = 1  # see {DOC} §1–3, §6 and §2.1; also §7-8"
    assert [r.section for r in references_in(line, "a.py")] == ["1", "2", "3", "6", "2.1", "7", "8"]
    assert references_in("§5 of a paper, not of the design notes", "a.py") == []
    assert [r.section for r in references_in(f"§9 before, {DOC} §4 after", "a.py")] == ["4"]
    assert [r.section for r in references_in("see §1 and §2.1", DOC, own=True)] == ["1", "2.1"]


def test_checker_fails_on_a_missing_section() -> None:
    """A reference to §99 (or to a subsection that does not exist) fails, naming file and line."""
    text = f'"""Module.\n\nThe construction ({DOC} §2, §99).\n"""\n# {DOC} §2.7\n'
    problems = dangling(references_in(text, "verify/x.py"), *headings(_DOCUMENT))
    assert len(problems) == 2
    assert problems[0].startswith(f"verify/x.py:3: cites {DOC} §99, which has no heading")
    assert problems[1].startswith(f"verify/x.py:5: cites {DOC} §2.7, which has no heading")
    assert dangling(references_in(f"{DOC} §1–2, §2.1", "ok.py"), *headings(_DOCUMENT)) == []


def test_checker_fails_on_outside_notes() -> None:
    """Each forbidden mention is reported with file and line."""
    text = "fine\n" + "\n".join(f"see {word}" for word in FORBIDDEN)
    problems = forbidden_mentions(text, "README.md")
    assert [p.split(":")[1] for p in problems] == ["2", "3", "4"]
    assert forbidden_mentions(f"see {DOC} §2", "README.md") == []
