"""The structure the code keeps (docs/architecture.md): which package may import which, and where a shared name is
defined. Read from the source with ``ast``, lazy imports inside functions included, so nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (``from a import b`` counts as ``a`` and ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _sources(*parts: str) -> list[Path]:
    base = ROOT.joinpath(*parts)
    return [base] if base.suffix == ".py" else sorted(base.rglob("*.py"))


def _offenders(paths: list[Path], forbidden: str) -> dict[str, list[str]]:
    out = {}
    for path in paths:
        bad = sorted(m for m in _imports(path) if m == forbidden or m.startswith(forbidden + "."))
        if bad:
            out[_module(path)] = bad
    return out


def test_the_handlers_import_nothing_from_the_shell() -> None:
    """handlers/ is pure: it imports no module of worker/, api/, cli/ or sandbox/."""
    for package in ("worker", "api", "cli", "sandbox"):
        assert _offenders(_sources("handlers"), package) == {}


def test_the_metric_declarations_know_neither_dramatiq_nor_redis() -> None:
    """worker/runtime/metrics.py declares and observes; the middleware, the Redis collector and the exporter
    process are modules of their own."""
    declarations = _sources("worker", "runtime", "metrics.py")
    for package in ("dramatiq", "redis", "worker.store", "worker.runtime"):
        assert _offenders(declarations, package) == {}
