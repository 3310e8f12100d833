"""Documentation that cannot drift: every ```python block of README.md and of
the docs/ pages runs here.

Each block runs in a fresh namespace (inside a temporary directory) unless
the line before its fence is ``<!-- test: continue -->``: then it continues
the previous block's namespace. ``<!-- test: skip -->`` there marks a block as
not run (explicit and rare: say why next to it). Blocks written as a console
session (``>>>``) are doctests: their printed output is compared
(``...`` matches anything, whitespace is normalised). A block importing ASE,
matplotlib, JAX, PyTorch or MindSpore is skipped where that is not installed.
"""
from __future__ import annotations

import doctest
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
MARK = re.compile(r"<!--\s*test:\s*(skip|continue)\s*-->\s*$")


def _pages() -> list[Path]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [p for p in pages if p.exists()]


def _blocks(page: Path) -> list[tuple[int, str, str]]:
    """``(line, marker, source)`` of each python block; marker is '', 'skip'
    or 'continue'."""
    text = page.read_text()
    out = []
    for m in FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = MARK.search(before)
        out.append((text.count("\n", 0, m.start()) + 1, mark.group(1) if mark else "", m.group(1)))
    return out


def _groups(page: Path):
    """Blocks joined into runs that share a namespace."""
    groups: list[list[tuple[int, str]]] = []
    for line, mark, src in _blocks(page):
        if mark == "skip":
            continue
        if mark == "continue" and groups:
            groups[-1].append((line, src))
        else:
            groups.append([(line, src)])
    return groups


CASES = [pytest.param(page, group, id=f"{page.relative_to(ROOT)}:{group[0][0]}")
         for page in _pages() for group in _groups(page)]


def _run_doctest(src: str, ns: dict, name: str, line: int) -> None:
    test = doctest.DocTestParser().get_doctest(src, ns, name, name, line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    runner.run(test, out=report.append, clear_globs=False)
    assert runner.failures == 0, "".join(report)


@pytest.mark.parametrize("page,group", CASES)
def test_doc_block_runs(page, group, tmp_path, monkeypatch):
    pytest.importorskip("scipy")          # the pages use the optimize / sparse examples
    monkeypatch.chdir(tmp_path)           # blocks that save files write them here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    ns: dict = {"__name__": "__doc_block__"}
    for line, src in group:
        name = f"{page.relative_to(ROOT)}:{line}"
        if re.match(r"\s*>>>", src):
            _run_doctest(src, ns, name, line)
        else:
            needs = set(re.findall(r"^\s*(?:import|from)\s+(ase|matplotlib|jax|torch|mindspore)\b",
                                   src, re.M))
            for mod in needs:
                pytest.importorskip(mod)
            exec(compile(src, name, "exec"), ns)


def test_markers_are_rare():
    """A skip marker is the exception: at most one in ten blocks."""
    marks = [mark for page in _pages() for _, mark, _ in _blocks(page)]
    assert marks.count("skip") <= max(1, len(marks) // 10), marks


def test_parser_sees_blocks(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("```python\nx = 1\n```\n<!-- test: continue -->\n```python\nassert x == 1\n"
                    "```\n<!-- test: skip -->\n```python\nraise SystemExit\n```\n")
    assert [m for _, m, _ in _blocks(page)] == ["", "continue", "skip"]
    assert [len(g) for g in _groups(page)] == [2]
    assert os.path.exists(page)
