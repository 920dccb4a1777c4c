"""The shape of the code: no import cycles, migrations never renamed, engine modules small.

The import graph is read from the source with ``ast``, so it sees every import statement
wherever it stands: at the top of a module or inside a function (a function-level import
that closes a cycle is a cycle all the same, only deferred).  Imports under
``if TYPE_CHECKING:`` are left out: they never run, they only name types.
"""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ingest", "datasette_claude_sessions")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of both packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of a module, except those under ``if TYPE_CHECKING:``."""
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of both packages it imports.

    ``from pkg import name`` is an edge to the submodule ``pkg.name`` when there is one,
    else to ``pkg`` itself (its __init__).  A module's implicit import of the packages
    that contain it is not an edge: Python runs a package's __init__ before any of its
    modules, whatever they import."""
    modules = module_files()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        for node in imports_of(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = []
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    targets.append(sub if sub in modules else source)
            for target in targets:
                # "import a.b.c" imports a.b.c (and its packages, not edges, see above)
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_import_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert "ingest.sync" in graph["ingest.watch"]  # top level: from .sync import ...
    assert "ingest.parse" in graph["ingest.filesync"]
    # datasette_claude_sessions/__init__.py: from . import pages, status
    assert {"datasette_claude_sessions.pages", "datasette_claude_sessions.status"} <= graph[
        "datasette_claude_sessions"
    ]
    # the plugin reaches the engine with absolute imports
    assert "ingest.parse" in graph["datasette_claude_sessions.transcript"]
    # inside a function: cli_sync imports run_pass when the command runs
    assert "ingest.sync" in graph["ingest.cli_sync"]


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(import_graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


# Engine modules stay small enough to read in one sitting (issue 11).  The demo corpus
# generator and the CLI command modules are not the engine; migrations.py is a list of
# schema steps, read one at a time, that grows with every change of the schema.
ENGINE = (
    "sync",
    "filesync",
    "sources",
    "db",
    "memory",
    "batch",
    "parse",
    "derive",
    "usage",
    "usage_sums",
    "localdays",
    "keep",
    "keep_walk",
    "keep_blobs",
    "keep_history",
    "keep_copy",
)


@pytest.mark.parametrize("module", ENGINE)
def test_engine_modules_stay_under_700_lines(module):
    lines = len((ROOT / "ingest" / f"{module}.py").read_text().splitlines())
    assert lines <= 700, f"ingest/{module}.py has {lines} lines"


def test_no_module_anywhere_reaches_900_lines():
    """Not the engine alone: the plugin, the CLI, the demo generator, tests and benches
    (the demo generator was one 1,581-line module; it is four now)."""
    long = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        if parts[0].startswith(".") or "build" in parts or "site-packages" in parts:
            continue
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines >= 900:
            long[str(path.relative_to(ROOT))] = lines
    assert long == {}


# Migrations are applied by name: a renamed one would run again on an old archive.
APPLIED_BEFORE = [
    "m001_initial",
    "m002_sync_indexes",
    "m003_web_app",
    "m004_foreign_key_indexes",
    "m005_session_facts_index",
    "m006_fts_kind",
    "m007_drop_unused_indexes",
    "m008_fts_hashsize",
    "m100_api_calls",
    "m101_api_calls_unpriced_index",
    "m102_usage_blocks",
    "m301_kept_files",
    "m501_context_is_not_a_prompt",
    "m701_page_indexes",
    "m702_tool_results_once",
]


def test_every_migration_lives_in_migrations_py_under_its_old_name(tmp_path):
    from ingest import migrations
    from ingest.db import open_db

    names = [name for name, _ in migrations.migrations.steps]
    assert set(APPLIED_BEFORE) <= set(names)
    assert len(names) == len(set(names))
    conn = open_db(tmp_path / "archive.db")
    applied = [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert applied == names
    conn.close()
    # No other module registers migrations (they all live in migrations.py).
    for path in module_files().values():
        if path.name != "migrations.py":
            assert "@migrations(" not in path.read_text(), path


def test_an_archive_migrated_by_name_is_not_migrated_again(tmp_path):
    """An archive whose log lists every migration (as one made before the move does)
    gets no migration run again: open_db leaves it as it is."""
    from ingest import migrations
    from ingest.db import open_db

    db = tmp_path / "archive.db"
    open_db(db).close()
    conn = sqlite3.connect(db)
    before = conn.execute("SELECT name, applied_at FROM _sqlite_migrations").fetchall()
    assert set(APPLIED_BEFORE) <= {name for name, _ in before}
    conn.close()
    migrations.ensure_schema(sqlite3.connect(db))
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT name, applied_at FROM _sqlite_migrations").fetchall() == before
    conn.close()


def test_the_5_hour_block_rule_is_written_once():
    """One implementation serves the usage_blocks view, `cost --by block`, the status
    page and the status line (issue 11): the rule, its SQL and the projection live in
    ingest/blocks.py only."""
    marks = ("BLOCK_HOURS = ", "'+5 hours'", '["projected_cost_usd"] =', "def current_block")
    found = {
        (name, mark)
        for name, path in module_files().items()
        for mark in marks
        if mark in path.read_text()
    }
    assert found == {("ingest.blocks", mark) for mark in marks}


def test_status_figures_are_counted_in_ingest_figures():
    """`claude-sessions status` and the status page count their figures in one module
    (issue 11): neither the status page's modules nor the CLI commands read the
    bookkeeping tables behind them (sidecar heartbeat, unreadable paths, kept contents)
    themselves."""
    tables = ("sync_heartbeat", "sync_unreadable", "kept_blobs")
    found = []
    for name, path in module_files().items():
        status_pages = name in (
            "datasette_claude_sessions.status",
            "datasette_claude_sessions.live",
        )
        if status_pages or name.startswith("ingest.cli"):
            text = path.read_text()
            found += [(name, table) for table in tables if table in text]
    assert found == []
    callers = [n for n, p in module_files().items() if "heartbeat.judge(" in p.read_text()]
    assert callers == ["ingest.figures"]


def test_serve_imports_what_it_needs_and_names_the_plugin_once():
    """`cli_serve` reads metadata.yml through ingest.metadata, never by running one of the
    plugin's files by path, and the plugin's name is written once (ingest.settings)."""
    texts = {name: path.read_text() for name, path in module_files().items()}
    assert [n for n, t in texts.items() if "spec_from_file_location" in t] == []
    assert [n for n, t in texts.items() if 'PLUGIN = "' in t] == ["ingest.settings"]
    assert [n for n, t in texts.items() if '"datasette-claude-sessions"' in t] == [
        "ingest.settings"
    ]
