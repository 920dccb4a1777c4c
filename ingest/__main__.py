"""``python -P -m ingest …``: the ``claude-sessions`` command, as ``serve`` starts its
watch child (``-P``: the current folder never comes first on ``sys.path``, so a folder
holding a package of its own named ``ingest`` cannot shadow this one)."""

from .entry import main

main()
