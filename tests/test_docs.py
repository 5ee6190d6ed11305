"""The documentation is complete and its code runs.

* Every public name (``lstm_jax.__all__``, the ``__all__`` of every public subpackage and of the
  public modules listed below) is rendered on exactly one API page (``docs/api/**/*.md``, the
  ``::: target`` directives of mkdocstrings), and every rendered name is public: a new export
  without a page fails here, and so does a page that documents an internal helper.
* Every ```` ```python ```` block in ``README.md`` and ``docs/**/*.md`` runs as written: a page's
  blocks in order, in one namespace, like a reader pasting them into one session. A block that
  cannot run here (it needs a GPU or the network) is marked by an HTML comment on the line
  before it, ``<!-- skip-snippet: why -->``, and the reason is required.
"""

from __future__ import annotations

import importlib
import inspect
import pathlib
import pkgutil
import re
import textwrap
import types
from typing import Any

import pytest
import yaml

import lstm_jax
from lstm_jax.cells.base import CELL_TYPES

ROOT = pathlib.Path(__file__).resolve().parents[1]
API_PAGES = sorted((ROOT / "docs" / "api").rglob("*.md"))
SNIPPET_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# Public modules without an ``__all__``: their public names are the functions and classes they
# define. Every package under lstm_jax (and lstm_jax.checkpoint, lstm_jax.typing) has one.
MODULES_WITHOUT_ALL = ("lstm_jax.impl", "lstm_jax.initializers", "lstm_jax.interop.torch")
EXTRA_MODULES = ("lstm_jax.checkpoint", "lstm_jax.typing")
SKIP = re.compile(r"^<!--\s*skip-snippet\s*:\s*(?P<why>\S.*?)\s*-->$")
# Names that a module without ``__all__`` leaves looking public but that are internal.
NOT_PUBLIC = {"lstm_jax.impl.check_impl"}  # the sequence functions' argument check
# Pages whose snippets other work is rewriting; strict, so the mark must go once they run.
KNOWN_BROKEN: dict[str, str] = {}


# ---- the public names --------------------------------------------------------------------------


def public_modules() -> list[str]:
    """Every package under lstm_jax, the modules a package exports in its ``__all__``
    (``lstm_jax.flax.linen``), and the modules listed above."""
    names = {"lstm_jax", *EXTRA_MODULES, *MODULES_WITHOUT_ALL}
    for info in pkgutil.walk_packages(lstm_jax.__path__, "lstm_jax."):
        if info.ispkg and not any(p.startswith("_") for p in info.name.split(".")):
            names.add(info.name)
    for name in sorted(names):
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", []):
            if isinstance(getattr(module, attr), types.ModuleType):
                names.add(f"{name}.{attr}")
    return sorted(names)


def public_names(module_name: str) -> dict[str, Any]:
    module = importlib.import_module(module_name)
    if hasattr(module, "__all__"):
        names = module.__all__
    else:
        # Functions and classes defined here, and UPPER_CASE constants (not imported aliases).
        def is_public(n: str, obj: Any) -> bool:
            if n.startswith("_"):
                return False
            if inspect.isfunction(obj) or inspect.isclass(obj):
                return obj.__module__ == module_name
            return n.isupper()

        names = [n for n, obj in vars(module).items() if is_public(n, obj)]
    out = {}
    for n in names:
        obj = getattr(module, n)
        path = f"{module_name}.{n}"
        # A submodule is checked by its own names.
        if path not in NOT_PUBLIC and not isinstance(obj, types.ModuleType):
            out[path] = obj
    return out


# ---- what the API pages render -----------------------------------------------------------------


def directives(path: pathlib.Path) -> list[tuple[str, dict[str, Any]]]:
    """``[(target, options)]`` of every ``::: target`` block of an API page."""
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        if not line.startswith("::: "):
            continue
        body = []
        for following in lines[i + 1 :]:
            if following.strip() and not following.startswith(" "):
                break
            body.append(following)
        config = yaml.safe_load(textwrap.dedent("\n".join(body))) or {}
        out.append((line[4:].strip(), config.get("options", {})))
    return out


def resolve(path: str) -> Any:
    parts = path.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        for attr in parts[k:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def rendered() -> list[tuple[str, str, Any, pathlib.Path]]:
    """``[(path, name, object, page)]`` for each name the API pages render at top level (a
    module's members, or the object a directive names); class members are not listed."""
    out = []
    for page in API_PAGES:
        for target, options in directives(page):
            obj = resolve(target)
            if inspect.isclass(resolve(target.rsplit(".", 1)[0])):
                continue  # a method shown on its own (``TorchStyleRNN.__call__``)
            if not isinstance(obj, types.ModuleType):
                out.append((target, target.rsplit(".", 1)[1], obj, page))
                continue
            members = options.get("members")
            if members is False:
                continue
            if members is None:  # mkdocstrings renders the module's public members
                members = [p.rsplit(".", 1)[1] for p in public_names(target)]
            for m in members:
                out.append((f"{target}.{m}", m, getattr(obj, m), page))
    return out


def matches(public: tuple[str, Any], shown: tuple[str, Any]) -> bool:
    """The same object under the same name, or a public alias of a rendered class or function
    (``lstm_jax.lstm`` is ``LSTMCell``)."""
    (name, obj), (shown_name, shown_obj) = public, shown
    if obj is not shown_obj:
        return False
    return name == shown_name or getattr(obj, "__name__", None) == shown_name


@pytest.fixture(scope="module")
def inventory():
    pytest.importorskip("flax")
    pytest.importorskip("optax")
    pytest.importorskip("grain")
    public = {}
    for module in public_modules():
        public.update(public_names(module))
    return public, rendered()


def test_api_pages_exist_and_are_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    assert API_PAGES
    for page in API_PAGES:
        assert str(page.relative_to(ROOT / "docs")) in nav, f"{page} is not in mkdocs.yml's nav"


def test_every_public_name_is_rendered_on_exactly_one_api_page(inventory):
    public, shown = inventory
    problems = []
    for path, obj in sorted(public.items()):
        name = path.rsplit(".", 1)[1]
        pages = {str(s[3].relative_to(ROOT)) for s in shown if matches((name, obj), s[1:3])}
        hits = [s[0] for s in shown if matches((name, obj), s[1:3])]
        if not hits:
            problems.append(f"{path}: on no page of docs/api")
        elif len(hits) > 1:
            problems.append(f"{path}: rendered {len(hits)} times ({', '.join(hits)}; {pages})")
    assert not problems, "\n".join(problems)


def test_api_pages_render_public_names_only(inventory):
    public, shown = inventory
    problems = []
    for path, name, obj, page in shown:
        if any(p.startswith("_") for p in path.split(".")):
            problems.append(f"{page.name}: {path} goes through a private name")
        if not any(matches((p.rsplit(".", 1)[1], o), (name, obj)) for p, o in public.items()):
            problems.append(f"{page.name}: {path} is not a public name")
    assert not problems, "\n".join(problems)


# ---- the snippets ------------------------------------------------------------------------------


def snippets(page: pathlib.Path) -> list[tuple[int, str, str | None]]:
    """``[(first line, code, skip reason or None)]`` of each ```` ```python ```` block."""
    lines = page.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            end = i + 1
            while not lines[end].startswith("```"):
                end += 1
            before = next((x.strip() for x in reversed(lines[:i]) if x.strip()), "")
            skip = SKIP.match(before)
            out.append((i + 2, "\n".join(lines[i + 1 : end]), skip["why"] if skip else None))
            i = end
        i += 1
    return out


PAGES_WITH_CODE = [p for p in SNIPPET_PAGES if snippets(p)]


def test_snippets_are_found_and_skips_give_a_reason():
    assert ROOT / "README.md" in PAGES_WITH_CODE
    assert len(PAGES_WITH_CODE) >= 8
    for page in SNIPPET_PAGES:
        text = page.read_text()
        marks = len(re.findall(r"<!--\s*skip-snippet", text))
        reasoned = sum(1 for *_, why in snippets(page) if why)
        assert marks == reasoned, f"{page}: a skip-snippet mark without a reason or a block"


def _page_param(page: pathlib.Path):
    rel = str(page.relative_to(ROOT))
    marks = [pytest.mark.slow]
    if rel in KNOWN_BROKEN:
        marks.append(pytest.mark.xfail(reason=KNOWN_BROKEN[rel], strict=True))
    return pytest.param(page, id=rel, marks=marks)


# Compiling each page's unrolls takes seconds; about 1-2 minutes for all pages on 2 busy cores.
@pytest.mark.parametrize("page", [_page_param(p) for p in PAGES_WITH_CODE])
def test_snippets_run_as_written(page, tmp_path, monkeypatch):
    pytest.importorskip("flax")
    monkeypatch.chdir(tmp_path)  # snippets that write files write them here
    monkeypatch.setenv("LSTM_JAX_DATA_DIR", str(tmp_path / "tensorflow_datasets"))
    registered = dict(CELL_TYPES)  # a page may register an example cell
    namespace: dict[str, Any] = {"__name__": "__snippet__"}
    try:
        for line, code, skip in snippets(page):
            if skip:
                continue
            try:
                exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), namespace)
            except Exception as e:
                pytest.fail(
                    f"{page.relative_to(ROOT)}, the block at line {line}: {type(e).__name__}: {e}",
                    pytrace=True,
                )
    finally:
        CELL_TYPES.clear()
        CELL_TYPES.update(registered)
