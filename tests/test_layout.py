"""The package's import graph is a stack: each module imports only from layers below it, and nothing imports in
a circle. A new module must be placed in LAYERS deliberately (docs/development.md draws the same stack)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fakevlm_cli"

LAYERS = {
    -1: ["library_warnings"],
    0: ["fakevlm_cli", "errors", "engine_types", "verdict", "tokens", "discover", "evidence", "synthetic", "toy",
        "video", "objects"],
    1: ["options", "record", "calibration"],
    2: ["images", "output", "fusion", "results_file", "localise", "pictures"],
    3: ["loader", "loading", "render", "datasets", "bench", "relevance"],
    4: ["engine", "pipeline", "sinks", "report"],
    5: ["run"],
    6: ["commands", "distributed"],
    7: ["commands.scan", "commands.explain", "commands.eval", "commands.report"],
    8: ["cli"],
    9: ["__main__"],
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def level(module: str) -> int:
    """The layer of a module: its own entry, else its package's (evidence.png is in evidence's layer)."""
    short = module.removeprefix("fakevlm_cli.") if module != "fakevlm_cli" else module
    while True:
        for number, names in LAYERS.items():
            if short in names:
                return number
        if "." not in short:
            raise AssertionError(f"{module} is in no layer of tests/test_layout.py: place it deliberately")
        short = short.rsplit(".", 1)[0]


def imports(path: Path) -> set[str]:
    """fakevlm_cli modules `path` imports at run time (imports under `if TYPE_CHECKING:` are for types only)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if not base.startswith("fakevlm_cli"):
                continue
            for alias in node.names:  # `from fakevlm_cli import run` imports the module run
                candidate = f"{base}.{alias.name}"
                is_module = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or \
                    (PACKAGE.parent / candidate.replace(".", "/")).is_dir()
                found.add(candidate if is_module else base)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("fakevlm_cli")}
    return found - {here}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_import_goes_down_the_stack():
    upward = []
    for module, deps in graph().items():
        for dep in deps:
            same_package = dep.startswith(module + ".") or module.startswith(dep + ".") or \
                dep.rsplit(".", 1)[0] == module.rsplit(".", 1)[0]
            if level(dep) > level(module) or (level(dep) == level(module) and not same_package):
                upward.append(f"{module} (layer {level(module)}) imports {dep} (layer {level(dep)})")
    assert upward == []


def test_there_is_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in edges.get(node, ()):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, dep]))
            if dep not in state:
                visit(dep, [*trail, node])
        state[node] = 2

    for module in edges:
        if module not in state:
            visit(module, [])


def test_the_graph_is_read_correctly():
    """The checker itself: it sees plain, relative and module imports, and skips typing-only ones."""
    edges = graph()
    assert "fakevlm_cli.engine" in edges["fakevlm_cli.run"]  # `from fakevlm_cli.engine import Engine`, lazily
    assert "fakevlm_cli.run" in edges["fakevlm_cli.commands.scan"]  # `from fakevlm_cli import run`
    assert "fakevlm_cli.engine" not in edges["fakevlm_cli.pipeline"]  # only under TYPE_CHECKING
    assert any(d.startswith("fakevlm_cli.evidence.") for d in edges["fakevlm_cli.evidence.png"])  # relative
