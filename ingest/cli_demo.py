"""Command: demo."""

from .cli import cli  # noqa: F401
