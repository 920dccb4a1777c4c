"""What every request passes through (Datasette's ``asgi_wrapper`` hook).

- **Host check.**  A request whose ``Host`` header names neither the address the
  connection arrived on, nor ``localhost`` / a loopback address, nor a name the user
  allowed (``allow_hosts`` in the plugin settings, ``claude-sessions serve --allow-host``)
  gets a 421 with one sentence and no data.  This stops DNS rebinding: a web page whose
  own name was rebound to 127.0.0.1 still sends its own name as ``Host``.
- **Content-Security-Policy** on every response: scripts only from this server's own
  origin, plus the hashes of the fixed inline scripts of Datasette's templates and of the
  installed plugins' fixed body scripts.  Nothing from the archive can run as script.
- **Paths hidden when exposed.**  When the server listens beyond loopback (``serve`` with
  a non-loopback ``--host``, or a request that arrived on a non-loopback address), an
  anonymous visitor sees ``~`` in place of the serving user's home directory in every
  page, JSON and CSV answer, and ``/-/metadata.json`` / ``/-/databases.json`` carry no
  absolute path at all.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
from pathlib import Path

from datasette.utils import await_me_maybe

from .utils import plugin_config

LOOPBACK_NAMES = {"localhost"}
TEXT_TYPES = (
    b"text/html",
    b"text/plain",
    b"text/csv",
    b"text/event-stream",
    b"application/json",
    b"application/javascript",
)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script>", re.S | re.I)
# table.html: <script>DATASETTE_ALLOW_FACET = {{ datasette_allow_facet }};</script>
FACET_SCRIPTS = ("DATASETTE_ALLOW_FACET = true;", "DATASETTE_ALLOW_FACET = false;")
PATH_JSON = ("/-/metadata.json", "/-/databases.json")
PATH_PAGES = ("/-/metadata", "/-/databases")


# --- hosts ---------------------------------------------------------------------------------


def split_host(value: str) -> str:
    """The name or address of a Host header, without port and IPv6 brackets, lowercased."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value.rstrip(".")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    host = split_host(host)
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts(datasette) -> set[str]:
    names = plugin_config(datasette).get("allow_hosts") or []
    if isinstance(names, str):
        names = [names]
    return {split_host(str(n)) for n in names}


def host_allowed(datasette, scope) -> bool:
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin-1")
    if not host:
        return False
    name = split_host(host)
    if is_loopback(name):
        return True
    allowed = allowed_hosts(datasette)
    if "*" in allowed or name in allowed:
        return True
    server = scope.get("server")
    if server and server[0] and split_host(str(server[0])) == name:
        return True  # the address this connection arrived on
    listen = plugin_config(datasette).get("listen_host")
    return bool(listen) and split_host(str(listen)) == name and not _unspecified(name)


def _unspecified(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_unspecified
    except ValueError:
        return False


def exposed(datasette, scope) -> bool:
    """True when the server listens beyond loopback: serve said so (listen_host), or this
    request arrived on a non-loopback address."""
    listen = plugin_config(datasette).get("listen_host")
    if listen and not is_loopback(str(listen)):
        return True
    server = scope.get("server")
    return bool(server and server[0]) and not is_loopback(str(server[0]))


# --- Content-Security-Policy ---------------------------------------------------------------


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def template_script_hashes(env) -> set[str]:
    """Hashes of every inline script with no template syntax in it, in every template
    Datasette can render (its own, the plugins', a --template-dir's)."""
    found = {_sha256(s) for s in FACET_SCRIPTS}
    for name in env.list_templates(filter_func=lambda n: n.endswith(".html")):
        try:
            source = env.loader.get_source(env, name)[0]
        except Exception:  # a template that cannot be read is not rendered either
            continue
        for script in INLINE_SCRIPT.findall(source):
            if "{{" not in script and "{%" not in script and "{#" not in script:
                found.add(_sha256(script))
    return found


async def body_script_hashes(datasette) -> set[str]:
    """Hashes of the installed plugins' extra_body_script outputs that do not depend on
    the page (datasette-leaflet's, for one); others stay blocked."""
    from datasette.plugins import pm

    found = set()
    try:
        results = pm.hook.extra_body_script(
            template="index.html",
            database=None,
            table=None,
            columns=None,
            view_name="index",
            request=None,
            datasette=datasette,
        )
    except Exception:
        return found
    for result in results:
        try:
            result = await await_me_maybe(result)
        except Exception:
            continue
        script = result.get("script") if isinstance(result, dict) else result
        if isinstance(script, str):
            found.add(_sha256(script))
    return found


def policy(hashes: set[str]) -> str:
    scripts = " ".join(["'self'", *sorted(hashes)])
    return (
        "default-src 'self'; "
        f"script-src {scripts}; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; "
        "font-src 'self' data:; "
        "connect-src 'self'; "
        "object-src 'none'; "
        "base-uri 'self'; "
        "form-action 'self'; "
        "frame-ancestors 'self'"
    )


# --- hiding paths ---------------------------------------------------------------------------


def home_dir() -> str | None:
    home = str(Path.home()).rstrip("/")
    return home if len(home) > 1 else None


class Scrubber:
    """Replaces the home directory (plain and %-encoded) with ``~`` in response bytes."""

    def __init__(self, home: str):
        from urllib.parse import quote

        forms = {home, quote(home, safe=""), quote(home, safe="").replace("%2F", "%2f")}
        self.forms = sorted((f.encode() for f in forms), key=len, reverse=True)
        self.pattern = re.compile(
            b"(?:" + b"|".join(re.escape(f) for f in self.forms) + b")(?![A-Za-z0-9._-])"
        )
        self.longest = max(len(f) for f in self.forms)

    def replace(self, data: bytes) -> bytes:
        return self.pattern.sub(b"~", data)

    def held_back(self, data: bytes) -> int:
        """How many trailing bytes could start a home path the next chunk completes."""
        for size in range(min(self.longest, len(data)), 0, -1):
            tail = data[-size:]
            if any(f.startswith(tail) for f in self.forms):
                return size
        return 0


def scrub_json_paths(data: bytes, path: str) -> bytes:
    """/-/databases.json: file names only.  /-/metadata.json: the plugin's folders as
    ``~`` paths, or their last part when outside the home directory."""
    try:
        value = json.loads(data)
    except ValueError:
        return data
    if path.startswith("/-/databases"):
        for db in value if isinstance(value, list) else []:
            if isinstance(db, dict) and db.get("path"):
                db["path"] = os.path.basename(str(db["path"]))
    else:
        _strip_absolute(value)
    return json.dumps(value, indent=4).encode()


QUOTED_PATH = re.compile(rb"(&#34;|&quot;|\")(/[^\"&<]*)(&#34;|&quot;|\")")


def scrub_page_paths(data: bytes) -> bytes:
    """/-/metadata and /-/databases (the JSON shown as HTML): no quoted absolute path."""
    return QUOTED_PATH.sub(
        lambda m: m.group(1) + _strip_absolute(m.group(2).decode()).encode() + m.group(3), data
    )


def _strip_absolute(node):
    if isinstance(node, dict):
        for key, item in node.items():
            node[key] = _strip_absolute(item)
    elif isinstance(node, list):
        return [_strip_absolute(item) for item in node]
    elif isinstance(node, str) and node.startswith("/"):
        home = home_dir()
        if home and (node == home or node.startswith(home + "/")):
            return "~" + node[len(home) :]
        return ".../" + os.path.basename(node.rstrip("/"))
    return node


async def anonymous(datasette, scope, receive) -> bool:
    """No actor_from_request hook recognises this request (as Datasette decides)."""
    from datasette.plugins import pm
    from datasette.utils.asgi import Request

    request = Request(scope, receive)
    for actor in pm.hook.actor_from_request(datasette=datasette, request=request):
        if await await_me_maybe(actor):
            return False
    return not scope.get("actor")


# --- the wrapper ----------------------------------------------------------------------------


def _misdirected(datasette, scope) -> tuple[int, bytes]:
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin-1") or "(none)"
    message = (
        f"This server does not answer to the host name {host!r}: open it by its address or "
        "as localhost, or allow the name with `claude-sessions serve --allow-host NAME` "
        "(plugin setting allow_hosts).\n"
    )
    return 421, message.encode()


def wrap(datasette, app):
    state: dict = {}

    async def hashes() -> set[str]:
        if "policy" not in state:
            found = template_script_hashes(datasette.jinja_env)
            found |= await body_script_hashes(datasette)
            state["policy"] = policy(found).encode()
        return state["policy"]

    async def guarded(scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await app(scope, receive, send)
        if not host_allowed(datasette, scope):
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            status, body = _misdirected(datasette, scope)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            return await send({"type": "http.response.body", "body": body})
        csp = await hashes()
        scrubber = None
        path = scope.get("path", "")
        if exposed(datasette, scope) and home_dir() and await anonymous(datasette, scope, receive):
            scrubber = Scrubber(home_dir())
        start: dict | None = None
        text = False
        carry = b""

        async def send_guarded(message):
            nonlocal start, text, carry
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (b"content-security-policy", b"x-content-type-options")
                ]
                headers += [
                    (b"content-security-policy", csp),
                    (b"x-content-type-options", b"nosniff"),
                ]
                message = dict(message, headers=headers)
                if scrubber is None:
                    return await send(message)
                ctype = dict((k.lower(), v) for k, v in headers).get(b"content-type", b"")
                text = ctype.split(b";")[0].strip().lower() in TEXT_TYPES
                if not text:
                    return await send(message)
                start = message  # sent with the first body chunk, its length corrected
                return None
            if message["type"] != "http.response.body" or scrubber is None or not text:
                return await send(message)
            body = carry + message.get("body", b"")
            more = message.get("more_body", False)
            if start is not None:
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                if not more:
                    body = scrubber.replace(body)
                    if path in PATH_JSON:
                        body = scrub_json_paths(body, path)
                    elif path in PATH_PAGES:
                        body = scrub_page_paths(body)
                    headers.append((b"content-length", str(len(body)).encode()))
                await send(dict(start, headers=headers))
                start = None
                if not more:
                    return await send({"type": "http.response.body", "body": body})
            if more:
                keep = scrubber.held_back(body)
                carry = body[len(body) - keep :] if keep else b""
                body = body[: len(body) - keep]
            else:
                carry = b""
            return await send(
                {"type": "http.response.body", "body": scrubber.replace(body), "more_body": more}
            )

        return await app(scope, receive, send_guarded)

    return guarded
