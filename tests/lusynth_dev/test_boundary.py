"""lusynth_dev stays outside the library: only the ``lusynth stack`` command imports it (lazily),
so the library runs without the dev extra and the dev tools never enter a stage's code digest."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "lusynth"
ALLOWED = {"cli/stack.py"}


def _imports_lusynth_dev(path: Path) -> list[int]:
    """Line numbers of the ``import lusynth_dev...`` / ``from lusynth_dev... import`` statements in ``path``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(n == "lusynth_dev" or n.startswith("lusynth_dev.") for n in names):
            lines.append(node.lineno)
    return lines


def test_only_the_stack_command_imports_lusynth_dev() -> None:
    offenders = {
        f"{p.relative_to(SRC).as_posix()}:{line}"
        for p in sorted(SRC.rglob("*.py"))
        if p.relative_to(SRC).as_posix() not in ALLOWED
        for line in _imports_lusynth_dev(p)
    }
    assert not offenders, f"src/lusynth imports the dev tools (lusynth_dev) outside cli/stack.py: {sorted(offenders)}"
    assert _imports_lusynth_dev(SRC / "cli" / "stack.py"), "cli/stack.py no longer imports lusynth_dev: update ALLOWED"
    assert not (SRC / "stack.py").exists(), "the stack moved to tools/lusynth_dev/stack.py"
