"""The README and docs/: short README, links that resolve, generated parts current."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def test_readme_is_at_most_300_lines():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 300


def test_readme_starts_with_the_two_commands():
    """.ci/run takes the second fenced block as the test command: it must stay second."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M)
    assert "claude-sessions serve" in blocks[0]
    assert "pip install" in blocks[1] and "pytest" in blocks[1]
    # Nothing but the title and the two commands' captions comes before them.
    assert text.index(blocks[1]) < text.index("## ")


def test_every_relative_link_resolves():
    broken = []
    for doc in [README, *DOCS]:
        for m in LINK.finditer(doc.read_text(encoding="utf-8")):
            target = m["target"].split("#")[0]
            if not target or re.match(r"^[a-z]+:", target):
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {m['target']}")
    assert broken == []


def test_readme_links_every_doc():
    text = README.read_text(encoding="utf-8")
    assert [d.name for d in DOCS if f"(docs/{d.name})" not in text] == []


def test_generated_docs_are_current():
    """docs/update_readme.py --check: --help texts, schema and queries match the program."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "update_readme.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
