"""The structure the code keeps (docs/architecture.md): which package may import which, and where a shared name is
defined. Read from the source with ``ast``, lazy imports inside functions included, so nothing is imported."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


@functools.cache
def _imports(path: Path) -> frozenset[str]:
    """Every module ``path`` imports, anywhere in it (``from a import b`` counts as ``a`` and ``a.b``). Read once
    per run: several tests below look at the same files."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(found)


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


COMPOSITION = frozenset({"worker.bootstrap", "worker.runtime.broker"})
"""The composition root, and the one module of worker/ that builds an ``App`` from it: the dramatiq entry point's
``build_runtime`` (the CLI's commands, in cli/, build theirs there too)."""


def test_the_service_layer_does_not_import_the_composition_root() -> None:
    """Every module of worker/ but ``COMPOSITION`` depends on narrow ports (``OperatorPorts``, ``RecoveryPorts``,
    ``ResealPorts``, ``ActorApp``, ...), not on ``worker.bootstrap``: the App satisfies them structurally."""
    paths = [path for path in _sources("worker") if _module(path) not in COMPOSITION]
    assert {"worker.recovery", "worker.reseal", "worker.runtime.holder"} <= {_module(path) for path in paths}
    assert _offenders(paths, "worker.bootstrap") == {}


def test_the_composition_root_is_what_it_says() -> None:
    """Each module exempted above exists and is what it is exempted as: the root, or a module that imports it."""
    for name in COMPOSITION:
        path = ROOT.joinpath(*name.split(".")).with_suffix(".py")
        assert path.is_file(), name
        assert name == "worker.bootstrap" or "worker.bootstrap.build_app" in _imports(path), name


def test_the_metric_declarations_know_neither_dramatiq_nor_redis() -> None:
    """worker/runtime/metrics.py declares and observes; the middleware, the Redis collector and the exporter
    process are modules of their own."""
    declarations = _sources("worker", "runtime", "metrics.py")
    for package in ("dramatiq", "redis", "worker.store", "worker.runtime"):
        assert _offenders(declarations, package) == {}


def _graph() -> dict[str, set[str]]:
    paths = [*_sources("worker"), *_sources("handlers")]
    modules = {_module(path): path for path in paths}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (empty when there is none)."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str]:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return []
        path.append(node)
        for target in sorted(graph[node]):
            found = visit(target)
            if found:
                return found
        path.pop()
        done.add(node)
        return []

    for start in sorted(graph):
        found = visit(start)
        if found:
            return found
    return []


def test_no_module_of_the_worker_imports_itself_back() -> None:
    """No import cycle in worker/ and handlers/, counting the imports made inside functions."""
    assert _cycle(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above can fail: a -> b -> c -> a is reported."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]


def test_the_queue_names_are_defined_once() -> None:
    """A queue's name is written only in worker/runtime/queues.py: elsewhere a ``QUEUE_*`` or ``*QUEUES`` name is
    built from its constants (admission's own ordered tuple, say), never from a string."""
    spelled = []
    for path in [*_sources("worker"), *_sources("cli"), *_sources("api")]:
        if _module(path) == "worker.runtime.queues":
            continue
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if any(n.startswith("QUEUE_") or n.endswith("QUEUES") for n in names) and any(
                isinstance(c, ast.Constant) and isinstance(c.value, str) for c in ast.walk(node.value)
            ):
                spelled.append(f"{_module(path)}.{names[0]}")
    assert spelled == []


def test_blocking_a_step_lives_with_the_blocks() -> None:
    """``fail`` (block a step and tell the upstream) is defined in worker/provisioning/blocks.py alone, and the
    key, money and KYC steps take it from there."""
    defined = [
        _module(path)
        for path in _sources("worker", "provisioning")
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name == "fail"
    ]
    assert defined == ["worker.provisioning.blocks"]
    for steps in ("key_steps.py", "money_steps.py", "kyc_steps.py"):
        assert "worker.provisioning.blocks.fail" in _imports(ROOT / "worker" / "provisioning" / steps)
