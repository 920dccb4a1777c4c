"""Command: serve.  Sync once, then run the watch sidecar and Datasette as child processes.

This module never imports datasette: Datasette runs as ``python -m datasette serve``.
"""

from __future__ import annotations

import ctypes
import errno
import importlib.util
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from .archive import check_writable
from .cli import (
    cli,
    db_option,
    given_claude_dir,
    projects_option,
    resolve_claude_dirs,
    resolve_db,
    resolve_projects,
)
from .cli_sync import database_errors, existing_roots, summary_line
from .lock import LockBusy, WatchLock
from .metadata import for_database
from .paths import data_dir
from .settings import PLUGIN

DEMO_MB = 20
STARTUP_SECONDS = 30.0
STOP_SECONDS = 5.0
PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DATASETTE_SETTINGS = (
    ("sql_time_limit_ms", "5000"),
    ("facet_time_limit_ms", "500"),
    # Suggested facets scan each column of a table three times (up to 50 ms each): seconds
    # on the big tables of a large archive.  The facets of metadata.yml stay.
    ("suggest_facets", "off"),
)


@cli.command(context_settings={"ignore_unknown_options": True})
@db_option
@projects_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on.  On a loopback address anyone who can open the page may "
    "press Sync now; on any other address only who `allow_sync` names (see README).",
)
@click.option(
    "--machine",
    default=None,
    metavar="NAME",
    help="Name recorded as the machine the files were read on, by this command's sync and "
    "its watch sidecar (what `sync --host` sets; --host here is the listen address). "
    "Default: this hostname.",
)
@click.option(
    "--port",
    default=8001,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to listen on.",
)
@click.option(
    "--allow-host",
    "--allow-hosts",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests that name this host (repeatable), for a DNS name or a "
    "reverse proxy; other names get 421.  The listen address and localhost always work.",
)
@click.option(
    "--allow-sync",
    "allow_sync",
    multiple=True,
    metavar="ACTOR",
    help="Who may press Sync now: an actor id (repeatable), or * for everybody.  Default: "
    "everybody on a loopback address, else only root.",
)
@click.option(
    "--timezone",
    metavar="ZONE",
    help="IANA time zone of the web app's days (the plugin setting timezone).  Default: UTC.",
)
@click.option(
    "--debounce",
    type=click.FloatRange(min=0),
    help="Seconds the watch sidecar collects file events before a pass.  [default: 0.1]",
)
@click.option(
    "--rescan",
    type=click.FloatRange(min=1),
    help="Seconds between the watch sidecar's full rescans.  [default: 30]",
)
@click.option(
    "--no-watch", is_flag=True, help="Do not start the watch sidecar (archive on demand only)."
)
@click.option(
    "--demo",
    is_flag=True,
    help=f"Serve a generated demo corpus (about {DEMO_MB} MB, written once into the data "
    "directory) with its own database, instead of your transcripts.",
)
@click.argument("datasette_args", nargs=-1, type=click.UNPROCESSED)
def serve(
    db_path,
    projects,
    host,
    machine,
    port,
    allow_hosts,
    allow_sync,
    timezone,
    debounce,
    rescan,
    no_watch,
    demo,
    datasette_args,
):
    """Sync your transcripts, keep syncing, and browse them in Datasette.

    \b
    1. one incremental pass over the projects directories (with a progress bar);
    2. `claude-sessions watch` as a child process, archiving new lines as they are
       written (skip with --no-watch);
    3. Datasette on http://HOST:PORT/ with the archive, this plugin's metadata and
       templates.  Ctrl-C stops both.

    --host is the address Datasette listens on; --machine is the machine name the sync
    and the sidecar record.  Every setting is also a plugin setting of the same name;
    the status page lists those in effect and where each came from (docs/settings.md).

    Further arguments go to `datasette serve` unchanged, for example
    `claude-sessions serve --setting sql_time_limit_ms 20000` or
    `claude-sessions serve -- --root`.
    """
    if demo and projects:
        raise click.ClickException("Use either --demo or --projects, not both.")
    if timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise click.ClickException(
                f"Unknown time zone {timezone!r}; use an IANA name like Europe/Paris."
            ) from None
    settings = given_settings(
        machine=machine,
        timezone=timezone,
        debounce=debounce,
        rescan=rescan,
        allow_sync=allow_sync,
    )
    host = listen_host(host, datasette_args)
    if not is_loopback(host):
        click.echo(
            f"Listening on {host}: whoever can reach it can read your transcripts, unless "
            "you add authentication to Datasette; Sync now is limited to `allow_sync`.",
            err=True,
        )
    check_port_free(host, port)
    claude_dirs: list[Path] = []
    if demo:
        db, roots = prepare_demo(db_path)
        check_writable(db)
        readable = roots
    else:
        db, roots = resolve_db(db_path).absolute(), resolve_projects(projects)
        check_writable(db)
        readable = existing_roots(projects, quiet=False)
        claude_dirs = resolve_claude_dirs(projects)
    initial_sync(db, readable, machine, [d for d in claude_dirs if d.is_dir()])

    children: list[subprocess.Popen] = []
    # SIGINT too: a shell starts background jobs with it ignored.
    previous = {sig: signal.signal(sig, _raise_keyboard_interrupt) for sig in STOP_SIGNALS}
    workdir = Path(tempfile.mkdtemp(prefix="claude-sessions-serve-"))
    try:
        if not no_watch:
            watcher = start_watch(
                db,
                roots if (demo or projects) else [],
                machine,
                given_claude_dir(),
                debounce=debounce,
                rescan=rescan,
            )
            if watcher:
                children.append(watcher)
        metadata = write_metadata(
            workdir / "metadata.json",
            db,
            roots,
            host,
            allow_hosts,
            settings,
            projects,
            claude_dirs,
            given_claude_dir() is not None,
        )
        datasette = start_datasette(db, metadata, host, port, list(datasette_args))
        children.append(datasette)
        url = f"http://{url_host(reachable(host))}:{port}/"
        wait_until_up(datasette, url)
        click.echo(f"Serving {url}  (Ctrl-C to stop)")
        supervise(datasette, children)
    except KeyboardInterrupt:
        click.echo("Stopping…", err=True)
    finally:
        # A second Ctrl-C must not cut the cleanup short (it takes STOP_SECONDS at most).
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        stop_children(children)
        shutil.rmtree(workdir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def start_child(command: list[str]) -> subprocess.Popen:
    """A child in a session of its own, so Ctrl-C reaches serve alone, which stops it.

    On Linux the child also gets SIGTERM should serve die without cleaning up (SIGKILL).
    """
    return subprocess.Popen(
        command,
        start_new_session=True,
        preexec_fn=_terminate_with_parent if sys.platform == "linux" else None,
    )


def _terminate_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def listen_host(host: str, datasette_args) -> str:
    """The address Datasette will listen on: the last --host / -h among the arguments
    passed through to it wins over serve's own --host (Datasette reads them last)."""
    found = host
    args = list(datasette_args)
    for i, arg in enumerate(args):
        if arg in ("--host", "-h") and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith("--host="):
            found = arg.split("=", 1)[1]
    return found


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def reachable(host: str) -> str:
    """An address to open for host: loopback for the any-address (0.0.0.0, ::)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return host


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def check_port_free(host: str, port: int) -> None:
    """Fail with one sentence when the port is taken (before any slow work)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"Port {port} on {host} is already in use; stop the other server or pick "
                "another port with --port."
            ) from None
        raise click.ClickException(f"Cannot listen on {host}:{port}: {e.strerror}.") from None
    finally:
        probe.close()


def prepare_demo(db_path: Path | None) -> tuple[Path, list[Path]]:
    """The demo corpus (generated on first use) and its own database, in the data directory."""
    from . import demo

    folder = data_dir() / "demo"
    projects = folder / "projects"
    if not projects.is_dir():
        partial = folder / "projects.partial"  # renamed once complete: no half corpus
        shutil.rmtree(partial, ignore_errors=True)
        try:
            with click.progressbar(
                length=int(DEMO_MB * demo.MB), label="Writing the demo corpus", file=sys.stderr
            ) as bar:
                demo.generate(partial, mb=DEMO_MB, seed=0, progress=bar.update)
            partial.rename(projects)
        except OSError as e:
            raise click.ClickException(
                f"Cannot write the demo corpus to {folder}: {e.strerror or e}."
            ) from None
    return resolve_db(db_path or folder / "demo.db").absolute(), [projects]


def initial_sync(
    db: Path, roots: list[Path], machine: str | None = None, claude_dirs: list[Path] = ()
) -> None:
    """One pass before serving, with a progress bar; skipped when another writer is busy."""
    from .sync import run_pass

    bar = None
    shown = 0

    def progress(done: int, total: int) -> None:
        nonlocal bar, shown
        if bar is None:
            bar = click.progressbar(length=max(total, 1), label="Syncing", file=sys.stderr)
            bar.__enter__()
        bar.length = max(total, done, 1)
        bar.update(done - shown)
        shown = done

    try:
        with database_errors(db):
            result = run_pass(
                db,
                roots,
                trigger="serve",
                host=machine,
                progress=progress,
                wait=False,
                claude_dirs=claude_dirs,
            )
    except LockBusy as e:
        click.echo(f"{e} Serving what is archived.", err=True)
        return
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    click.echo(summary_line(result, db), err=True)


def start_watch(
    db: Path,
    roots: list[Path],
    machine: str | None = None,
    claude_dir: Path | None = None,
    debounce: float | None = None,
    rescan: float | None = None,
) -> subprocess.Popen | None:
    """`claude-sessions watch` as a child, unless a sidecar already watches this archive.

    No roots: watch the default ones (it waits for them to appear).  ``claude_dir``: the
    --claude-dir given, passed on.
    """
    probe = WatchLock(db)
    try:
        probe.acquire(False)
    except LockBusy as e:
        click.echo(f"{e} Using it instead of starting another.", err=True)
        return None
    probe.release()
    # -P -m: the current folder is not put first on sys.path (a folder of the user's
    # with an ``ingest`` or ``datasette`` package of its own must not shadow ours).
    command = [sys.executable, "-P", "-m", "ingest"]
    command += ["watch", "--db", str(db)]
    if machine:
        command += ["--host", machine]
    if claude_dir is not None:
        command += ["--claude-dir", str(claude_dir)]
    if debounce is not None:
        command += ["--debounce", str(debounce)]
    if rescan is not None:
        command += ["--rescan", str(rescan)]
    for root in roots:
        command += ["--projects", str(root)]
    return start_child(command)


def plugin_file(name: str) -> Path:
    """metadata.yml / templates of the plugin: inside the wheel, else in the source checkout.

    Found without importing datasette_claude_sessions (which imports datasette).
    """
    spec = importlib.util.find_spec("datasette_claude_sessions")
    if spec is None or not spec.origin:
        raise click.ClickException("The datasette_claude_sessions package is not installed.")
    package = Path(spec.origin).parent
    for candidate in (package / name, package.parent / name):
        if candidate.exists():
            return candidate
    raise click.ClickException(f"The plugin's {name} is missing from {package}.")


def load_metadata(database: str) -> dict:
    """The plugin's metadata.yml with its archive sections renamed for ``database``
    (ingest.metadata: no datasette imported)."""
    return for_database(database, plugin_file("metadata.yml"))


def given_settings(**values) -> dict:
    """{setting: (value, source)} for the settings given on the command line (the status
    page shows where each came from)."""
    out = {}
    for name, value in values.items():
        if value in (None, ()):
            continue
        if name == "allow_sync":
            value = True if "*" in value else {"id": list(value)}
        out[name] = (value, "claude-sessions serve --" + name.replace("_", "-"))
    return out


def write_metadata(
    path: Path,
    db: Path,
    roots: list[Path],
    host: str,
    allow_hosts=(),
    settings: dict | None = None,
    projects_given=(),
    claude_dirs: list[Path] | None = None,
    claude_dir_given: bool = False,
) -> Path:
    """metadata.yml plus this run's plugin settings, as JSON for `datasette --metadata`,
    with where each came from under ``sources`` (ingest.settings).

    listen_host tells the plugin whether it is reachable beyond loopback (then Sync now
    is only for who allow_sync names, and anonymous visitors see no home directory)."""
    metadata = load_metadata(db.stem)
    config = metadata.setdefault("plugins", {}).setdefault(PLUGIN, {}) or {}
    metadata["plugins"][PLUGIN] = config
    sources = config.setdefault("sources", {})
    config["projects"] = [str(r) for r in roots]
    sources["projects"] = (
        "claude-sessions serve --projects" if projects_given else "claude-sessions serve (default)"
    )
    config["db"] = str(db)
    sources["db"] = "claude-sessions serve --db"
    if claude_dirs is not None:  # what watch keeps; Sync now keeps the same
        config["claude_dir"] = [str(d) for d in claude_dirs]
        sources["claude_dir"] = (
            "claude-sessions serve --claude-dir"
            if claude_dir_given
            else "claude-sessions serve (default)"
            if claude_dirs
            else "claude-sessions serve (none: --projects or --demo given)"
        )
    config["listen_host"] = host
    if allow_hosts:
        config["allow_hosts"] = sorted({*config.get("allow_hosts", []), *allow_hosts})
        sources["allow_hosts"] = "claude-sessions serve --allow-host"
    if is_loopback(host):
        config["allow_sync"] = True
        sources["allow_sync"] = f"claude-sessions serve on a loopback address ({host})"
    for name, (value, source) in (settings or {}).items():
        config[name] = value
        sources[name] = source
    path.write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    return path


def start_datasette(
    db: Path, metadata: Path, host: str, port: int, extra: list[str]
) -> subprocess.Popen:
    command = [sys.executable, "-P", "-m", "datasette", "serve", str(db)]
    command += ["--metadata", str(metadata), "--template-dir", str(plugin_file("templates"))]
    command += ["--host", host, "--port", str(port)]
    for name, value in DATASETTE_SETTINGS:
        command += ["--setting", name, value]
    command += extra
    return start_child(command)


def wait_until_up(process: subprocess.Popen, url: str) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise click.ClickException(
                f"Datasette exited with code {process.returncode}; its message is above."
            )
        try:
            with urllib.request.urlopen(url + "-/versions.json", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise click.ClickException(f"Datasette did not answer on {url} within {STARTUP_SECONDS:g} s.")


def supervise(datasette: subprocess.Popen, children: list[subprocess.Popen]) -> None:
    """Wait for Ctrl-C; end when Datasette does; say so when the sidecar dies."""
    warned = set()
    while datasette.poll() is None:
        for child in children:
            if child is not datasette and child.poll() is not None and child.pid not in warned:
                warned.add(child.pid)
                click.echo(
                    f"The watch sidecar exited (code {child.returncode}); new lines are "
                    "archived only by Sync now until you restart serve.",
                    err=True,
                )
        time.sleep(0.5)
    raise click.ClickException(f"Datasette exited with code {datasette.returncode}.")


def stop_children(children: list[subprocess.Popen]) -> None:
    """SIGTERM each child's process group, then SIGKILL what is left after STOP_SECONDS."""
    for child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for child in children:
        try:
            child.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            _signal_group(child, signal.SIGKILL)
            child.wait()


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    if child.poll() is not None:
        return
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:
        pass
