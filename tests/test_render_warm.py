"""The transcript's first page does its one-time work at startup, and the shortcuts it
takes for speed give the same result as the slow way.

- Lexers by file name come from an index of Pygments' built-in patterns instead of
  Pygments' own lookup (which imports every package offering plugin lexers, IPython's
  among them, on each call): the same class for every pattern Pygments knows.
- The plugin's startup warms Markdown, the lexers of common languages and the
  transcript templates, so the first transcript request compiles none of them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pygments.lexers import find_lexer_class_for_filename
from pygments.lexers._mapping import LEXERS

from datasette_claude_sessions import render

from .pages_helpers import build_archive, synthetic_session, write_jsonl


def sample_names() -> list[str]:
    """A file name for every pattern of every built-in lexer, and some real ones."""
    names = {
        "main.py",
        "setup.cfg",
        "Makefile",
        "CMakeLists.txt",
        "Dockerfile",
        "x.tar.gz",
        "component.tsx",
        "index.d.ts",
        "notes.md",
        "a.h",
        "deep/path/to/app.rs",
        "no_extension",
        ".bashrc",
        "PKGBUILD",
        "file.unknownext",
    }
    for _module, _name, _aliases, patterns, _mimes in LEXERS.values():
        for pattern in patterns:
            name = re.sub(r"\[(.)[^\]]*\]", r"\1", pattern).replace("*", "x").replace("?", "y")
            names.add(name)
    return sorted(names)


def test_lexer_by_file_name_is_pygments_choice():
    builtin = {name for _module, name, *_ in LEXERS.values()}
    checked = 0
    for name in sample_names():
        expected = find_lexer_class_for_filename(name)
        if expected is not None and expected.name not in builtin:
            continue  # a plugin's lexer: the plugin-free index leaves it out on purpose
        got = render._lexer_class_for_filename(name.rsplit("/", 1)[-1])
        assert got is expected, (name, got, expected)
        checked += 1
    assert checked > 800


def test_highlighting_by_file_name_does_not_import_plugin_lexers(monkeypatch):
    import pygments.lexers
    import pygments.plugin

    def refuse(*args, **kwargs):
        raise AssertionError("plugin lexers looked up")

    monkeypatch.setattr(pygments.plugin, "find_plugin_lexers", refuse)
    monkeypatch.setattr(pygments.lexers, "find_plugin_lexers", refuse)
    monkeypatch.setattr(render, "_LEXERS", {})
    for name in ("app.py", "page.tsx", "Makefile", "style.css", "x.unknownext"):
        render._lexer(filename=f"/src/{name}")
    spans = render.highlight_spans("def f():\n    return 1\n", filename="/src/app.py")
    assert spans is not None and 'class="hl-k"' in spans


@pytest.mark.parametrize("name", ["a.py", "b.ts", "c.json", "d.sh", "e.md"])
def test_cached_lexer_is_the_one_for_the_file(name):
    lexer = render._lexer(filename=f"/w/{name}")
    assert type(lexer) is find_lexer_class_for_filename(name)


WARM_CHECK = r"""
import asyncio, json, sys
from pathlib import Path
import jinja2
from pygments.lexers.python import PythonLexer
from datasette_claude_sessions import render
from tests.pages_helpers import datasette_for

compiled = []
original = jinja2.Environment._compile
def counting(self, source, filename):
    compiled.append(filename)
    return original(self, source, filename)
jinja2.Environment._compile = counting

async def main():
    ds = datasette_for(Path(sys.argv[1]))
    await ds.invoke_startup()
    warmed = {
        "python lexer": "_tokens" in PythonLexer.__dict__,
        "markdown parser": render._MD is not None,
        "file name index": render._FILENAME_INDEX is not None,
    }
    at_startup = len(compiled)
    response = await ds.client.get("/-/claude-sessions/session/" + sys.argv[2])
    assert response.status_code == 200, response.status_code
    assert 'class="hl-k"' in response.text  # a Python file, highlighted
    print(json.dumps({"warmed": warmed, "compiled by the request": compiled[at_startup:]}))

asyncio.run(main())
"""


def test_startup_warms_what_the_first_transcript_page_needs(tmp_path):
    """In a fresh process: after the plugin's startup, the Python lexer and the Markdown
    parser are built, and the first transcript request compiles no template."""
    sid = "3a7e0000-0000-4000-8000-000000000001"
    extra = tmp_path / "extra"
    write_jsonl(extra / f"{sid}.jsonl", synthetic_session(sid, 40, review=True))
    db = build_archive(tmp_path, real=False, extra={f"-work/{sid}.jsonl": extra / f"{sid}.jsonl"})
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", WARM_CHECK, str(db), sid],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {
        "warmed": {"python lexer": True, "markdown parser": True, "file name index": True},
        "compiled by the request": [],
    }
