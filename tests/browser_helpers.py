"""A real `claude-sessions serve` process and a headless Chromium for tests/test_browser.py.

Debian's chromium (/usr/bin/chromium) is driven by Playwright; `playwright install` is never
needed.  Without chromium the browser tests skip, unless $CI is set: then they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
DOCS = Path(__file__).resolve().parent.parent / "docs"


def require_chromium() -> None:
    """Skip (or, under CI, fail) when Debian's chromium is not installed."""
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} not found: install it with `apt-get install -y chromium`"
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI is set, so this is a failure)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isolated_env(home: Path) -> dict[str, str]:
    """The environment the conftest autouse fixture gives tests, for a subprocess."""
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        CLAUDE_CONFIG_DIR=str(home / ".claude"),
        CLAUDE_SESSIONS_DB=str(home / "archive.db"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        PYTHONUNBUFFERED="1",
    )
    return env


def claude_sessions_command() -> list[str]:
    """The installed console script, next to the running interpreter when possible."""
    beside = Path(sys.executable).parent / "claude-sessions"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("claude-sessions")
    if found:
        return [found]
    return [sys.executable, "-c", "from ingest.cli import cli; cli()"]


class Server:
    """`claude-sessions serve` in its own process group, output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, port: int, cwd=None):
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            claude_sessions_command()
            + ["serve", *args, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_up(self, timeout: float = 90.0) -> None:
        """Poll the URL until Datasette answers; fail with the server's output otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"claude-sessions serve exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/-/versions.json", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        pytest.fail(f"claude-sessions serve did not answer on {self.url}:\n{self.log()}")

    def stop(self) -> None:
        """Stop serve (it stops its children on SIGTERM); kill whatever of it is left.

        serve starts the watch sidecar and Datasette in process groups of their own, so
        they are found by parent pid first and, should serve not stop them, killed by pid.
        """
        children = child_pids(self.process.pid)
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for pid in [self.process.pid, *children]:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._log.close()


def child_pids(parent: int) -> list[int]:
    """Pids whose parent is ``parent`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def screenshot_dir(tmp_dir: Path) -> Path:
    """docs/ when UPDATE_SCREENSHOTS=1 (to refresh the README's images), else a tmp dir."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        return DOCS
    return tmp_dir


@contextlib.contextmanager
def chromium(home: Path):
    """Debian's headless chromium, launched with its own HOME (a module-scoped fixture
    starts before conftest's per-test HOME: chromium must write no profile, crash report
    or cache into the real home)."""
    from playwright.sync_api import sync_playwright

    require_chromium()
    home.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, env=isolated_env(home)
        )
        try:
            yield browser
        finally:
            browser.close()
