"""The claude-sessions sidecar: tails Claude Code transcripts into a SQLite archive.

This package never imports datasette; the plugin lives in datasette_claude_sessions.
"""

__version__ = "0.1.0"
