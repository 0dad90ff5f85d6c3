"""Comments and docs point only at what a reader of this repository can open.

A pointer to a document outside the tree ("REFERENCE.md §3", "../shared/...") or to a
numbered issue ("issue 7") cannot be followed from a clone; the fact belongs in the
comment itself or in docs/.  And a path a design note names must exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCANNED = ("pyruntime", "native", "tests", "integration", "docs", "Makefile", "README.md",
           "DEVELOPERS.md")
SKIPPED_SUFFIXES = {".so", ".pyc", ".o", ".a", ".tar", ".gz", ".zst", ".png"}

# Each: what it catches, and the pattern.  Built so that this file does not match itself.
OUTSIDE = [
    ("a document outside the repository", re.compile(r"\b(REFERENCE|STYLE)(\.md)?\s*(§|section\b)"
                                                     r"|\b(REFERENCE|STYLE)\.md\b")),
    ("a path outside the repository", re.compile(r"\.\./shared\b|/work/(shared|main|wt)\b")),
    ("a numbered section of another document", re.compile("\u00a7" + r"\s*\d")),
    ("a numbered issue", re.compile(r"\b[Ii]ssues?\s+#?\d+\b")),
]


def _files() -> list[Path]:
    out: list[Path] = []
    for name in SCANNED:
        top = REPO / name
        candidates = [top] if top.is_file() else sorted(top.rglob("*"))
        for path in candidates:
            if (path.is_file() and "__pycache__" not in path.parts
                    and path.suffix not in SKIPPED_SUFFIXES
                    and path != Path(__file__).resolve()):
                out.append(path)
    return out


def _lines(path: Path) -> list[str]:
    data = path.read_bytes()
    if b"\0" in data[:4096]:
        return []  # a binary file (a built probe, an image layer)
    return data.decode("utf-8", errors="replace").splitlines()


def test_the_scan_sees_the_tree() -> None:
    files = {p.relative_to(REPO).as_posix() for p in _files()}
    for expected in ("native/api.h", "pyruntime/container.py", "Makefile",
                     "docs/architecture.md", "tests/conftest.py"):
        assert expected in files


@pytest.mark.parametrize("what,pattern", OUTSIDE, ids=[w for w, _ in OUTSIDE])
def test_no_pointer_outside_the_repository(what: str, pattern: re.Pattern) -> None:
    found = [f"{path.relative_to(REPO)}:{n}: {line.strip()}"
             for path in _files() for n, line in enumerate(_lines(path), 1)
             if pattern.search(line)]
    assert not found, f"{what} (put the fact in the comment or in docs/):\n" + "\n".join(found)


@pytest.mark.parametrize("text,caught", [
    ("(REFERENCE " + "\u00a7" + "3)", True), ("see REFERENCE.md section 1", True),
    ("../shared/STYLE.md", True), ("(issue 7)", True), ("Issue #12:", True),
    ("docs/process-chain.md", False), ("an issue with the fd", False),
    ("image references", False),
])
def test_the_patterns_catch_what_they_name(text: str, caught: bool) -> None:
    assert any(p.search(text) for _, p in OUTSIDE) == caught


# A repository path in backquotes or a markdown link, in the design notes.
_PATH = re.compile(r"[`(]((?:pyruntime|native|tests|integration|docs)/[\w./-]*)[`)]")


def test_paths_the_design_notes_name_exist() -> None:
    notes = sorted((REPO / "docs").glob("*.md")) + [REPO / "DEVELOPERS.md"]
    missing = []
    for note in notes:
        for n, line in enumerate(_lines(note), 1):
            for name in _PATH.findall(line):
                if not (REPO / name.rstrip(".")).exists():
                    missing.append(f"{note.relative_to(REPO)}:{n}: {name}")
    docs_links = re.compile(r"\]\(([\w.-]+\.md)\)")
    for note in sorted((REPO / "docs").glob("*.md")):
        for n, line in enumerate(_lines(note), 1):
            for name in docs_links.findall(line):
                if not (note.parent / name).exists():
                    missing.append(f"{note.relative_to(REPO)}:{n}: {name}")
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)
