"""Finding secrets in text and replacing them with ``[REDACTED:<kind>]``.

The token rules come from detect-secrets (Yelp's well-kept scanner: its plugins' regular
expressions for AWS key ids, GitHub, GitLab, Slack, Stripe, OpenAI, PyPI, SendGrid, Azure
and Discord tokens and passwords in URLs), read from the installed package so they follow
its updates.  It has no rule for Anthropic and Google API keys, project-scoped OpenAI keys,
AWS secret keys outside quoted ``aws...key`` assignments, whole private key blocks (it
flags the BEGIN line only), JWTs with their signature (its pattern stops lazily after the
payload), and secret-looking names in ``.env``-style lines; those rules are added here.

Each rule runs only on values holding one of its plain-text anchors.  Replacements never contain quotes or backslashes: redacting a JSON text
(``events.raw``) keeps it valid JSON.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field


def _detect_secrets(module: str, cls: str) -> list[str]:
    """The regular expressions of one detect-secrets plugin."""
    import importlib

    plugin = getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), cls)
    return [p.pattern for p in plugin.denylist]


# A private key block, also inside JSON text where its newlines are the two characters
# \n; a block cut before its END line runs to the end of its base64 body.
PRIVATE_KEY = (
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:.*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|(?:\\[nr]|[A-Za-z0-9+/=\s:,.-])*)"
)


def rules() -> list[tuple[str, str, int, tuple[str, ...]]]:
    """(kind, regex, group, anchors): group 0 replaces the whole match, n > 0 only that
    group; a rule runs on a value only when one of its anchors (plain text) is in it."""
    ds = _detect_secrets
    gitlab = ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "GR1348941", "glcbt-")
    gitlab += ("glimt-", "glptt-", "glagent-", "gloas-")
    return [
        ("private-key", PRIVATE_KEY, 0, ("PRIVATE KEY",)),
        ("anthropic-key", r"sk-ant-[A-Za-z0-9_-]{20,}", 0, ("sk-ant-",)),
        ("openai-key", r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}", 0, ("sk-",)),
        *[("openai-key", p, 0, ("T3BlbkFJ",)) for p in ds("openai", "OpenAIDetector")],
        ("openai-key", r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9]{48}(?![A-Za-z0-9])", 0, ("sk-",)),
        *[
            ("aws-key-id", p, 0, ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"))
            for p in ds("aws", "AWSKeyDetector")[:1]
        ],
        (
            "aws-secret-key",
            r"(?i:aws_?secret_?access_?key|aws_?secret_?key|secretaccesskey)"
            r"[\"'\\]*\s*[:=]\s*[\"'\\]*([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
            1,
            ("ecret", "ECRET"),
        ),
        *[
            ("github-token", p, 0, ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"))
            for p in ds("github_token", "GitHubTokenDetector")
        ],
        ("github-token", r"github_pat_[A-Za-z0-9_]{60,}", 0, ("github_pat_",)),
        *[("gitlab-token", p, 0, gitlab) for p in ds("gitlab_token", "GitLabTokenDetector")],
        ("slack-token", r"xox[abposr]-[A-Za-z0-9-]{10,}", 0, ("xox",)),
        *[("slack-token", p, 0, ("hooks.slack.com",)) for p in ds("slack", "SlackDetector")[1:]],
        ("stripe-key", r"(?:sk|rk|pk)_(?:test|live)_[0-9a-zA-Z]{24,}", 0, ("_live_", "_test_")),
        *[("stripe-key", p, 0, ("_live_",)) for p in ds("stripe", "StripeDetector")],
        ("google-api-key", r"AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])", 0, ("AIza",)),
        *[("pypi-token", p, 0, ("pypi-",)) for p in ds("pypi_token", "PypiTokenDetector")],
        *[("sendgrid-key", p, 0, ("SG.",)) for p in ds("sendgrid", "SendGridDetector")],
        *[
            ("azure-storage-key", p, 0, ("AccountKey=",))
            for p in ds("azure_storage_key", "AzureStorageKeyDetector")
        ],
        ("jwt", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", 0, ("eyJ",)),
        *[("password-in-url", p, 1, ("://",)) for p in ds("basic_auth", "BasicAuthDetector")],
        (
            "env-secret",
            r"(?:^|\\n)[ \t]*(?:export[ \t]+)?[A-Z0-9_]*(?:" + SECRET_WORD + r")"
            r"[A-Z0-9_]*=(?:\\?[\"'])?([^\s\"'\\#;,&]{4,})",
            1,
            ("=",),
        ),
    ]


# .env-style names are upper case: DB_PASSWORD=..., export GITHUB_TOKEN=...
SECRET_WORD = (
    r"SECRET|TOKEN|PASSW(?:OR)?D|PASSPHRASE|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|AUTH_?KEY|"
    r"CREDENTIALS?|_PWD|DSN"
)
# Home folders: /home/NAME, /Users/NAME, /root (not inside a longer name), C:\Users\NAME
# (also JSON-escaped, C:\\Users\\NAME).
HOME = r"/(?:home|Users)/[^/\s\"'\\<>:*?|]+|/root(?=/|\b)"
WINDOWS_HOME = r"[A-Za-z]:(?:\\\\|\\)Users(?:\\\\|\\)[^\\\s\"'/<>:*?|]+"
NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-")
ENCODED_HOMES = r"(?<![A-Za-z0-9])-(?:home|Users)-[A-Za-z0-9_.]+(?=-)"


@dataclass
class Redactor:
    """Replaces secrets (and, unless keep_paths, home directories) in text."""

    keep_paths: bool = False
    counts: Counter = field(default_factory=Counter)
    home: str | None = None  # this machine's home folder (default: Path.home())

    def __post_init__(self):
        if self.home is None:
            from pathlib import Path

            self.home = str(Path.home())
        self.home = self.home.rstrip("/")
        if len(self.home) < 2:
            self.home = ""
        # Claude Code's folder name for it: every character but letters and digits is -.
        self.encoded_home = re.sub(r"[^A-Za-z0-9]", "-", self.home)
        self.own_home = (
            re.compile(re.escape(self.home) + r"(?![A-Za-z0-9_.-])") if self.home else None
        )
        self.rules = [
            (kind, re.compile(pattern, re.S | re.M), group, anchors)
            for kind, pattern, group, anchors in rules()
        ]
        self.homes = re.compile(HOME)
        self.windows_homes = re.compile(WINDOWS_HOME)
        self.encoded_homes = re.compile(ENCODED_HOMES)

    def secrets(self, value: str) -> str:
        for kind, pattern, group, anchors in self.rules:
            if any(a in value for a in anchors):
                value = pattern.sub(self._replacer(kind, group), value)
        return value

    def _replacer(self, kind: str, group: int):
        marker = f"[REDACTED:{kind}]"

        def replace(match: re.Match) -> str:
            if group and match.start(group) < 0:
                return match.group(0)
            self.counts[kind] += 1
            if not group:
                return marker
            start, end = match.start(group) - match.start(), match.end(group) - match.start()
            text = match.group(0)
            return text[:start] + marker + text[end:]

        return replace

    def paths(self, value: str) -> str:
        if self.keep_paths:
            return value

        def home(match: re.Match) -> str:
            start = match.start()
            before = match.string[max(start - 2, 0) : start]
            if before and before[-1] in NAME_CHARS and before not in ("\\n", "\\t", "\\r"):
                return match.group(0)  # part of a longer name: /x/home/..., a~/root
            self.counts["home-path"] += 1
            return "~"

        if self.own_home is not None and self.home in value:
            value, n = self.own_home.subn("~", value)
            self.counts["home-path"] += n
        if self.encoded_home and self.encoded_home in value:
            value = value.replace(self.encoded_home, "-~")
        if "/home/" in value or "/Users/" in value or "/root" in value:
            value = self.homes.sub(home, value)
        if "Users\\" in value:
            value, n = self.windows_homes.subn("~", value)
            self.counts["home-path"] += n
        if "-home-" in value or "-Users-" in value:
            value = self.encoded_homes.sub("-~", value)
        return value

    def text(self, value: str) -> str:
        return self.paths(self.secrets(value))

    def value(self, value):
        """A column value: text redacted; bytes as UTF-8 (zstd frames decompressed and
        compressed again); anything else unchanged."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            if value[:4] == ZSTD_MAGIC:
                import zstandard

                plain = zstandard.ZstdDecompressor().decompress(value)
                redacted = self.value(plain)
                if redacted == plain:
                    return value
                return zstandard.ZstdCompressor(level=3).compress(redacted)
            decoded = value.decode("utf-8", "surrogateescape")
            redacted = self.text(decoded)
            return value if redacted == decoded else redacted.encode("utf-8", "surrogateescape")
        return value


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
