"""Datasette plugin for the claude-sessions archive."""

from datasette import hookimpl


@hookimpl
def extra_css_urls():
    return []
