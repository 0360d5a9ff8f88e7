"""Imports run one way (DESIGN.md): layers <- models <- {registry, data, metrics} <- systems <- {cli, evaluate, demo}.

Every ``import`` in the package is read from its source, including the ones inside functions, so a lazy
import cannot hide an arrow that runs upward.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: module prefix -> level; a module imports only lower levels, or its own level (siblings, e.g. data <-> registry)
LEVELS = {
    "zoo.checks": 0, "zoo.hub": 0, "zoo.tokenizers": 0, "zoo.images": 0, "zoo.captions": 0,
    "zoo.layers": 1,
    "zoo.models": 2,
    "zoo.registry": 3, "zoo.data": 3, "zoo.metrics": 3, "zoo": 3,  # the package's face re-exports the registry
    "zoo.systems": 4, "zoo.cards": 4,  # the card writer: systems render a run's card with it, it reads no system
    "zoo.anomaly": 4,  # detectors over models and the registry; the CLI's score command uses it
    "zoo.evaluate": 5, "zoo.cli": 5, "zoo.demo": 5,
}


def level(module: str) -> int:
    best = max((p for p in LEVELS if module == p or module.startswith(p + ".")), key=len)
    return LEVELS[best]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "demo":
        parts = ["zoo", "demo", *parts[1:]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """The zoo modules `path` imports (``from zoo import __version__`` is the version string, not the registry)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "zoo"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "zoo" and not node.level:
            if node.module == "zoo":
                names = {a.name for a in node.names} - {"__version__"}
                out |= {f"zoo.{n}" if f"zoo.{n}" in LEVELS or (ROOT / "zoo" / f"{n}.py").exists()
                        or (ROOT / "zoo" / n).is_dir() else "zoo" for n in names}
            else:
                out.add(node.module)
    return out


def sources() -> list[Path]:
    return sorted([*(ROOT / "zoo").rglob("*.py"), *(ROOT / "demo").rglob("*.py")])


def test_imports_run_one_way():
    upward = []
    for path in sources():
        here = module_name(path)
        for target in imports(path):
            if level(target) > level(here):
                upward.append(f"{here} (level {level(here)}) imports {target} (level {level(target)})")
    assert not upward, "\n".join(upward)


def test_no_import_cycles_between_modules():
    graph = {module_name(p): {t for t in imports(p) if t != "zoo"} for p in sources()}
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for target in graph.get(node, ()):
            visit(target)
        stack.pop()

    for node in graph:
        visit(node)
    assert not cycles, cycles


def test_the_check_sees_a_lazy_upward_import(tmp_path):
    layer = tmp_path / "x.py"
    layer.write_text("def f():\n    from zoo.systems.base import GenerativeSystem\n    import zoo.registry\n")
    assert imports(layer) == {"zoo.systems.base", "zoo.registry"}
    assert level("zoo.layers.x") < level("zoo.systems.base") and level("zoo.layers.x") < level("zoo.registry")
