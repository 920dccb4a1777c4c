"""The ``claude-sessions`` console script.

``claude-sessions statusline`` runs after every message Claude Code sends, so it is
answered before click and the command modules are imported; everything else goes to
the click group in ingest.cli.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["statusline"]:
        # A process of a few milliseconds: the cyclic collector, run over and over by the
        # objects the imports make, would only cost time (3-4 ms of a one-file pass).
        import gc

        gc.disable()
        from .statusline import fast_main

        code = fast_main(argv[1:])
        if code is not None:
            sys.exit(code)
    from .cli import cli

    cli(prog_name="claude-sessions")


if __name__ == "__main__":
    main()
