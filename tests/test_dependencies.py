"""``import lstm_jax`` needs jax and numpy only: the Flax, Optax, Orbax, torch and TensorFlow
parts are imported by the modules that use them, never by the core."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import lstm_jax

HEAVY = ("flax", "optax", "orbax", "torch", "tensorflow", "tensorflow_datasets", "grain", "chex")


def test_import_lstm_jax_imports_no_framework():
    code = (
        "import sys, lstm_jax, jax, jax.numpy as jnp\n"
        "cell = lstm_jax.LSTMCell(2)\n"
        "p = cell.init(jax.random.key(0), 1)\n"
        "lstm_jax.unroll(cell, p, jnp.ones((1, 2, 1)))\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def _imports_of(path: pathlib.Path, package: pathlib.Path) -> set[str]:
    """The lstm_jax modules that ``path`` imports anywhere in its body (module level or inside
    functions: a lazy import that hides a cycle counts too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lstm_jax"):
            found.add(node.module)
            for alias in node.names:  # "from lstm_jax import _checks" names a module
                if (
                    (package.parent / (node.module + "." + alias.name).replace(".", "/"))
                    .with_suffix(".py")
                    .exists()
                ):
                    found.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lstm_jax")}
    return found


def test_the_package_has_no_import_cycles():
    package = pathlib.Path(lstm_jax.__file__).parent
    graph = {}
    for path in package.rglob("*.py"):
        name = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        name = name.removesuffix(".__init__")
        graph[name] = _imports_of(path, package) - {name}
    # A package's __init__ re-exports its children: importing a child does not cycle through it.
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(module: str, trail: tuple[str, ...]) -> None:
        if state.get(module) == 2:
            return
        assert state.get(module) != 1, "import cycle: " + " -> ".join((*trail, module))
        state[module] = 1
        for dep in graph.get(module, ()):
            visit(dep, (*trail, module))
        state[module] = 2

    for module in graph:
        visit(module, ())
