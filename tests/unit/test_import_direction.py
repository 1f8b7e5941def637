"""The packages import one way: core <- data, policy <- rollout, verifier <- rl <- module <- entry points.

Checked on the source (every import statement, also those inside functions and under
TYPE_CHECKING) and at run time (what importing ``speciarl.runs`` actually loads).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import speciarl

ROOT = Path(speciarl.__file__).parent
# What each package may import besides itself. ``built_models`` (the tiny default and the
# real-width random presets) builds tokenizers from and warm-starts on the synthetic data, so it
# sits above data and policy. ``evaluation``'s
# loop drives a policy, a backend and a judge; its metrics, tables and report import only core.
# ``runs`` is the toolbox of the run (loggers, callbacks, checkpoints): what it needs of the
# layers above is passed in.
ALLOWED = {
    "core": set(),
    "data": {"core"},
    "policy": {"core"},
    "built_models": {"core", "data", "policy"},
    "rollout": {"core", "policy"},
    "verifier": {"core"},
    "evaluation": {"core", "policy", "rollout", "verifier"},
    "rl": {"core", "data", "policy", "rollout", "verifier", "evaluation"},
    "runs": {"core", "evaluation"},
}
ENTRY_POINTS = {"train", "evaluate", "verify", "reproduce", "export", "memory"}


def imports_of(path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported speciarl module, under TYPE_CHECKING) for every import in the file."""
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for child in node.body for n in ast.walk(child))
    rel = path.relative_to(ROOT)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = list(rel.parts[:-1])[: len(rel.parts) - node.level]
                module = ".".join(["speciarl", *base, *([module] if module else [])])
            names = [module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, n, id(node) in typing_only) for n in names if n.startswith("speciarl.")]
    return found


def package_of(module: str) -> str:
    return module.split(".")[1]


def test_every_package_imports_only_the_layers_below_it():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        pkg = rel.parts[0].removesuffix(".py")
        if pkg not in ALLOWED:
            continue
        for line, module, _ in imports_of(path):
            target = package_of(module)
            if target != pkg and target not in ALLOWED[pkg]:
                wrong.append(f"{rel}:{line} imports {module}")
    assert not wrong, "imports that climb back up:\n" + "\n".join(wrong)


def test_no_module_is_imported_by_the_packages():
    """Entry points and module.py sit on top: no package imports them."""
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted(ROOT.rglob("*.py"))
        if path.relative_to(ROOT).parts[0] in ALLOWED
        for line, module, _ in imports_of(path)
        if package_of(module) in ENTRY_POINTS | {"module"}
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_between_packages_at_run_time():
    """Runtime imports (module level and inside functions, not TYPE_CHECKING) form no package cycle."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        pkg = path.relative_to(ROOT).parts[0].removesuffix(".py")
        for _, module, typing_only in imports_of(path):
            if not typing_only and package_of(module) != pkg:
                graph.setdefault(pkg, set()).add(package_of(module))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(pkg for pkg in graph if reaches(pkg, pkg, {pkg}))
    assert not cycles, f"packages on an import cycle: {cycles}"


def test_importing_runs_loads_none_of_the_pipeline():
    code = (
        "import sys, importlib, pkgutil, speciarl.runs as r\n"
        "for m in pkgutil.iter_modules(r.__path__): importlib.import_module('speciarl.runs.' + m.name)\n"
        "print(' '.join(sorted({n.split('.')[1] for n in sys.modules if n.startswith('speciarl.')})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert "runs" in loaded
    assert not loaded & {
        "rl",
        "policy",
        "data",
        "rollout",
        "verifier",
        "built_models",
        "module",
        *ENTRY_POINTS,
    }, loaded
