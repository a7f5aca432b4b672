"""The house's import rules (docs: STYLE.md), read from the code's own `import` statements with `ast`.

- the library `viton_tf` imports no job (`training`, `export`, `benchmarks`, `tools`) and nothing from
  `serving`; only `viton_tf/cli.py` may, and only inside its functions (lazily);
- the library has no jobs: only `viton_tf/cli.py` uses argparse or defines `run_*(args)` handlers;
- `serving/` imports nothing from `viton_tf`;
- no import circles, counting every import, lazy ones included.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("viton_tf", "training", "export", "serving", "benchmarks", "tools")
JOBS = ("training", "export", "benchmarks", "tools", "serving")
CLI = "viton_tf.cli"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (the deepest one of this repository that the statement names)
    line: int
    lazy: bool  # inside a function body

    def __str__(self) -> str:
        return f"{MODULES[self.source].relative_to(REPO)}:{self.line} imports {self.target}"


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return name


def _imports(source: str) -> list[Import]:
    path = MODULES[source]
    package = source.split(".") if path.name == "__init__.py" else source.split(".")[:-1]
    found = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package[:len(package) - child.level + 1] + ([base] if base else []))
                # `from a import b` imports the module a.b when there is one, else names of a.
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                         for alias in child.names]
            else:
                visit(child, lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))
                continue
            for name in names:
                target = _resolve(name)
                if target is not None and target != source:
                    found.append(Import(source, target, child.lineno, lazy))

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


IMPORTS = [edge for source in MODULES for edge in _imports(source)]


def _top(module: str) -> str:
    return module.split(".")[0]


def test_the_modules_are_found():
    assert {"viton_tf.cli", "viton_tf.config", "training.train", "serving.server"} <= set(MODULES)
    assert any(edge.source == CLI and _top(edge.target) == "training" for edge in IMPORTS)


def test_the_library_imports_no_job_and_nothing_from_serving():
    wrong = [str(edge) for edge in IMPORTS if _top(edge.source) == "viton_tf" and _top(edge.target) in JOBS
             and not (edge.source == CLI and edge.lazy)]
    assert not wrong, "the library may not import the jobs (only viton_tf/cli.py, inside functions):\n" + \
        "\n".join(wrong)


def test_serving_imports_nothing_from_the_library():
    wrong = [str(edge) for edge in IMPORTS if _top(edge.source) == "serving" and _top(edge.target) == "viton_tf"]
    assert not wrong, "serving/ must load SavedModels without viton_tf:\n" + "\n".join(wrong)


def test_the_library_has_no_jobs():
    """argparse and `run_*(args)` handlers belong to cli.py and the jobs, not to the library."""
    wrong = []
    for name, path in MODULES.items():
        if _top(name) != "viton_tf" or name == CLI:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import) and any(alias.name == "argparse" for alias in node.names) or \
                    isinstance(node, ast.ImportFrom) and node.module == "argparse":
                wrong.append(f"{path.relative_to(REPO)}:{node.lineno} imports argparse")
            if isinstance(node, ast.FunctionDef) and node.name.startswith("run_") and \
                    [a.arg for a in node.args.args] == ["args"]:
                wrong.append(f"{path.relative_to(REPO)}:{node.lineno} defines the job handler {node.name}(args)")
    assert not wrong, "jobs live in training/ or export/, their flags in viton_tf/cli.py:\n" + "\n".join(wrong)


def _circles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(MODULES):
        if node not in index:
            connect(node)
    return circles


def test_no_import_circles():
    circles = _circles(IMPORTS)
    described = ["; ".join(str(edge) for edge in IMPORTS if edge.source in c and edge.target in c) for c in circles]
    assert not circles, "import circles (lazy imports included):\n" + "\n".join(described)


def test_the_circle_finder_finds_a_circle():
    edges = [Import("viton_tf.config", "viton_tf.cli", 1, False), Import("viton_tf.cli", "viton_tf.config", 1, True)]
    assert _circles(edges) == [["viton_tf.cli", "viton_tf.config"]]
