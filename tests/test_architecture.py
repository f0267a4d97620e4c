"""The shape of the code, checked (docs/ARCHITECTURE.md): no import cycle among the project's
modules, counting imports inside functions; apps depend one way (cases <- inference <-
analytics, ml/ knows no Django); no module over 400 lines outside migrations and tests."""

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("brainscan", "cases", "inference", "analytics", "ml")
MAX_LINES = 400

# Which project packages each package may import (ml/ is a library every app may use). Pages (views
# and what only they use: forms, the case page's reading and viewer modules), the API (serializers
# and examples included), admin, URLs and commands of an app are leaves that may read any app, so
# they are not held to their package's row; a module that is not a leaf never imports one.
MAY_IMPORT = {
    "ml": {"ml"},
    "cases": {"cases", "brainscan", "ml"},
    "inference": {"inference", "cases", "ml", "brainscan"},
    "analytics": {"analytics", "inference", "cases", "ml", "brainscan"},
    "brainscan": set(PACKAGES),
}
LEAVES = (
    "views",
    "api",
    "serializers",
    "admin",
    "urls",
    "management",
    "forms",
    "templatetags",
    "reading",
    "viewer",
)


def _is_leaf(module: str) -> bool:
    # A part named as a leaf, or one of its kind (api_export, api_examples, admin_accounts).
    return any(part.split("_")[0] in LEAVES for part in module.split(".")[1:])


def _modules():
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


MODULES = dict(_modules())


def _resolve(name: str) -> str | None:
    """The project module an import names: the longest prefix that is one of ours."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _imports(module: str, path: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            target = _resolve(name)
            if target and target != module:
                found.add(target)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, result = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        result.append(sorted(component))
    return result


def test_the_checker_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    cycles = _cycles(GRAPH)
    assert not cycles, "\n".join(" <-> ".join(cycle) for cycle in cycles)


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_apps_depend_one_way(package):
    wrong = []
    for module, targets in GRAPH.items():
        parts = module.split(".")
        if parts[0] != package or _is_leaf(module):
            continue
        for target in sorted(targets):
            if target.split(".")[0] not in MAY_IMPORT[package]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_module_over_400_lines():
    long = {
        module: lines
        for module, path in MODULES.items()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_no_module_but_a_leaf_imports_a_leaf():
    wrong = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if not _is_leaf(module)
        for target in sorted(targets)
        if _is_leaf(target)
    ]
    assert not wrong, "\n".join(wrong)
