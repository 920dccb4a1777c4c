"""Command: serve."""

from .cli import cli  # noqa: F401
