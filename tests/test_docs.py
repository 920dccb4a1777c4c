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


def test_project_urls_point_only_at_where_the_repository_is():
    """pyproject's project URLs are shown on the package's page: each must be under an
    address the repository is published at (a git remote), not a made-up one."""
    import tomllib

    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("urls", {})
    found = subprocess.run(
        ["git", "-C", str(ROOT), "remote", "-v"], capture_output=True, text=True
    ).stdout.split()
    remotes = [
        re.sub(r"^git@([^:]+):", r"https://\1/", r).removesuffix(".git")
        for r in found
        if "://" in r or r.startswith("git@")
    ]
    published = [r for r in remotes if r.startswith("https://")]
    for name, url in urls.items():
        assert any(url.startswith(r) for r in published), (
            f"project URL {name} = {url} is not under a published remote of the repository"
        )
