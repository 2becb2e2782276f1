"""The harness's modules form no import circle, and none imports another's private names:
each module can be read (and replaced) on its own."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "harness"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (REPO / relative.with_suffix(".py")).exists() or (
        REPO / relative / "__init__.py"
    ).exists()


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every harness import in the file, lazy ones included; imports under
    `if TYPE_CHECKING:` are for the type checker only and do not count."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
            names = [a.name for a in node.names]
            # `from harness import describing` imports the module harness.describing
            modules = [f"{node.module}.{n}" for n in names if _is_module(f"{node.module}.{n}")]
            others = [n for n in names if not _is_module(f"{node.module}.{n}")]
            found += [(m, []) for m in modules] + ([(node.module, others)] if others else [])
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("harness")]
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {m for m, _ in _imports(path)}
        # importing a package runs its __init__; a submodule import depends on the submodule
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_harness_modules_import_no_circle() -> None:
    assert _cycle(_graph()) is None


def test_no_harness_module_imports_another_modules_private_names() -> None:
    private = [
        f"{_module_name(path)} imports {name} from {module}"
        for path in PACKAGE.rglob("*.py")
        for module, names in _imports(path)
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert private == []


def test_no_harness_module_reaches_into_another_objects_private_attributes() -> None:
    reached = [
        f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}"
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and ast.unparse(node.value) not in ("self", "cls")
    ]
    assert reached == []
