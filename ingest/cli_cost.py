"""Commands: cost, merge."""

from .cli import cli  # noqa: F401
