"""The rooms of SPEC section 1 keep their doors: imports point down the layers, in no circle.

Every ``.py`` file of ``sla_engine``, ``channels``, ``storage`` and ``bot`` is parsed with ``ast``: an
import inside a function or under ``if TYPE_CHECKING`` counts as much as one at the top. From the
bottom up:

    sla_engine                          the rules, pure (tests/test_engine_purity.py)
    channels.messages, .identity        the vocabulary every channel speaks
    storage | channels.<protocol>       SQL | one protocol each; neither imports the other
    bot (use cases)                     intake, desk, outbox, reminders, billing, reports, accounts, texts
    bot.web | bot.staffchat             the HTTP app | the staff conversation
    bot.app                             the composition root
    bot.cli | bot.demo                  the ways in

A module imports only from its own layer or below, and the graph of module imports has no cycle.
SQLAlchemy and Alembic are imported only in ``storage``; aioimaplib, aiosmtplib and twilio only in
``channels``; no module borrows another's private helper (``from a import _helper``). The checkers are tested on synthetic graphs too, so a checker that finds nothing cannot
pass for a clean house.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sla_engine", "channels", "storage", "bot")

# (prefix, layer): the longest matching prefix decides; a module of bot not listed is a use case
LAYERS: tuple[tuple[str, int], ...] = (
    ("sla_engine", 0),
    ("channels.messages", 1), ("channels.identity", 1),
    ("channels", 2), ("storage", 2),
    ("bot", 3),
    ("bot.web", 4), ("bot.staffchat", 4),
    ("bot.app", 5),
    ("bot.cli", 6), ("bot.demo", 6),
)
# peers on one layer that must not import each other: (importer prefix, imported prefix)
APART = (("storage", "channels.email"), ("storage", "channels.whatsapp"), ("storage", "channels.telegram"),
         ("storage", "channels.calls"), ("channels", "storage"), ("bot.web", "bot.staffchat"),
         ("bot.staffchat", "bot.web"), ("bot.demo", "bot.cli"))
# third-party libraries and the only places that may import them
CONFINED = {"sqlalchemy": ("storage",), "alembic": ("storage",), "aioimaplib": ("channels",),
            "aiosmtplib": ("channels",), "twilio": ("channels",)}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """Every module ``source`` imports, absolute, with its line: ``from a import b`` gives ``a.b`` and ``a``
    (``a.b`` is kept only when it is a module of the house, see :func:`graph`)."""
    found: list[tuple[int, str]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source, module)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return found


def graph(sources: Mapping[str, tuple[str, bool]]) -> dict[str, dict[str, int]]:
    """Module -> {imported module of the house: line} for ``sources`` (module -> (source, is_package))."""
    edges: dict[str, dict[str, int]] = {}
    for module, (source, is_package) in sources.items():
        targets: dict[str, int] = {}
        for line, name in imports_of(source, module, is_package):
            if name in sources and name != module:
                targets.setdefault(name, line)
            elif "." in name and name.rpartition(".")[0] in sources:
                pass  # ``from a import name``: a name defined in module a, counted as ``a``
        edges[module] = targets
    return edges


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > best[0]:
                best = (len(prefix), layer)
    return None if best is None else best[1]


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def upward_imports(edges: Mapping[str, Mapping[str, int]]) -> list[str]:
    """Every import of a module on a higher layer, or of a peer kept apart."""
    found: list[str] = []
    for module, targets in sorted(edges.items()):
        mine = layer_of(module)
        for target, line in sorted(targets.items()):
            theirs = layer_of(target)
            if mine is not None and theirs is not None and theirs > mine:
                found.append(f"{module}:{line} imports {target} (layer {theirs} above {mine})")
            elif any(_under(module, a) and _under(target, b) for a, b in APART):
                found.append(f"{module}:{line} imports {target} (kept apart)")
    return found


def cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:  # iterative, so a deep graph cannot overflow the stack
        nonlocal counter
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(edges.get(target, ())))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
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
                        found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def confined_imports(sources: Mapping[str, tuple[str, bool]]) -> list[str]:
    """Every import of a library of :data:`CONFINED` outside the places that may import it."""
    found: dict[tuple[str, int], str] = {}
    for module, (source, is_package) in sorted(sources.items()):
        for line, name in imports_of(source, module, is_package):
            allowed = CONFINED.get(name.split(".")[0])
            if allowed is not None and not any(_under(module, place) for place in allowed):
                shortest = found.get((module, line))  # ``from a.b import c``: named as a.b, not a.b.c
                if shortest is None or len(name) < len(shortest):
                    found[(module, line)] = name
    return sorted(f"{module}:{line} imports {name} (only {', '.join(CONFINED[name.split('.')[0]])} may)"
                  for (module, line), name in found.items())


def private_imports(sources: Mapping[str, tuple[str, bool]]) -> list[str]:
    """Every ``from module import _name`` of a house module by another one: a private helper is its module's."""
    found: list[str] = []
    for module, (source, _) in sorted(sources.items()):
        for node in ast.walk(ast.parse(source, module)):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "") in sources:
                found.extend(f"{module}:{node.lineno} imports {node.module}.{alias.name}" for alias in node.names
                             if alias.name.startswith("_") and not alias.name.startswith("__"))
    return found


def house() -> dict[str, tuple[str, bool]]:
    sources: dict[str, tuple[str, bool]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue  # Alembic's scripts: storage's own, loaded by Alembic
            sources[module_name(path)] = (path.read_text(encoding="utf-8"), path.name == "__init__.py")
    return sources


# -- the house ----------------------------------------------------------------------------------------------


def test_no_import_runs_up_the_layers() -> None:
    assert upward_imports(graph(house())) == []


def test_no_import_cycle() -> None:
    assert cycles(graph(house())) == []


def test_libraries_stay_in_their_rooms() -> None:
    assert confined_imports(house()) == []


def test_no_private_helper_is_borrowed() -> None:
    assert private_imports(house()) == []


def test_every_module_has_a_layer() -> None:
    assert [module for module in house() if layer_of(module) is None] == []


# -- the checkers, on synthetic sources ---------------------------------------------------------------------


def _sources(**modules: str) -> dict[str, tuple[str, bool]]:
    return {name.replace("__", "."): (source, False) for name, source in modules.items()}


def test_checker_finds_a_lazy_import_up_the_layers() -> None:
    sources = _sources(storage__repo="def f():\n    from bot.intake import x\n", bot__intake="x = 1\n")
    assert upward_imports(graph(sources)) == ["storage.repo:2 imports bot.intake (layer 3 above 2)"]


def test_checker_finds_peers_kept_apart() -> None:
    sources = _sources(channels__email__imap="import storage.db\n", storage__db="")
    assert upward_imports(graph(sources)) == ["channels.email.imap:1 imports storage.db (kept apart)"]


def test_checker_allows_imports_down_and_across_a_layer() -> None:
    sources = _sources(bot__cli__main="from bot.app import run\nimport storage.db\n",
                       bot__app="from bot import intake\n", bot__intake="import storage.db\n", storage__db="")
    assert upward_imports(graph(sources)) == []


@pytest.mark.parametrize("shape", [
    {"a": ["b"], "b": ["a"]},
    {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]},
])
def test_checker_finds_a_cycle(shape: dict[str, list[str]]) -> None:
    found = cycles(shape)
    assert len(found) == 1 and "d" not in found[0] and len(found[0]) >= 2


def test_checker_finds_the_cli_circle_through_a_package() -> None:
    sources = {"bot.cli": ("from bot.cli.main import main\n", True),
               "bot.cli.main": ("def f():\n    from bot.cli import billing\n", False),
               "bot.cli.billing": ("def g():\n    from bot.cli import with_database\n", False)}
    assert cycles(graph(sources)) == [["bot.cli", "bot.cli.billing", "bot.cli.main"]]


def test_checker_finds_a_confined_library_outside_its_room() -> None:
    sources = _sources(bot__mail="from sqlalchemy.orm import Session\n",
                       storage__db="import sqlalchemy\n", channels__email__imap="import aioimaplib\n",
                       bot__imap="def f():\n    import aioimaplib\n")
    assert confined_imports(sources) == ["bot.imap:2 imports aioimaplib (only channels may)",
                                         "bot.mail:1 imports sqlalchemy.orm (only storage may)"]


def test_checker_finds_a_borrowed_private_helper() -> None:
    sources = _sources(bot__cli__report="from bot.cli.main import _open_db, main\n",
                       bot__cli__main="def _open_db(): ...\n", bot__app="from __future__ import annotations\n")
    assert private_imports(sources) == ["bot.cli.report:1 imports bot.cli.main._open_db"]
