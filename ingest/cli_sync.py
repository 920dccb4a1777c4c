"""Commands: sync, watch, status, export, path."""

from .cli import cli  # noqa: F401
