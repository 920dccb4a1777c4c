"""Turn one transcript line into the columns of an ``events`` row.

The format is described in ../shared/FORMAT.md.  Rules kept here:
- unknown record types are archived like any other (no error);
- a line that is not JSON, not a JSON object, or not UTF-8 is an error row (kind ``error``)
  whose bytes are still archived;
- ``text`` flattens what a person would search for: prompts, answers, thinking, tool
  inputs and tool results, titles and summaries; images become ``[image: type]``.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

import orjson

from .prompts import kind_of_user_text

EVENT_COLUMNS = (
    "type",
    "subtype",
    "kind",
    "uuid",
    "parent_uuid",
    "session_id",
    "agent_id",
    "is_sidechain",
    "is_meta",
    "timestamp",
    "cwd",
    "git_branch",
    "version",
    "role",
    "model",
    "message_id",
    "request_id",
    "stop_reason",
    "leaf_uuid",
    "text",
)
# Index of session_id in EVENT_COLUMNS, for callers that fill it from the file name.
SESSION_ID_INDEX = EVENT_COLUMNS.index("session_id")
# text is the last: events.text is worked out from raw (ingest.lines.event_text), not stored
TEXT_INDEX = EVENT_COLUMNS.index("text")
STORED_COLUMNS = EVENT_COLUMNS[:TEXT_INDEX]

TITLE_FIELDS = {"custom-title": "customTitle", "ai-title": "aiTitle", "agent-name": "agentName"}


class LineError(ValueError):
    """A line that cannot be read as a JSON object."""


def parse_line(raw: bytes) -> dict[str, Any]:
    """Parse one line (without its newline); raise LineError with a one-line reason."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as ue:
            raise LineError(f"invalid UTF-8 at byte {ue.start}") from None
        raise LineError(f"invalid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise LineError(f"JSON value is a {type(obj).__name__}, not an object")
    return obj


def skeleton(line: bytes, keep: int) -> bytes:
    """The line with every JSON string longer than ``keep`` bytes cut to about its first
    ``keep`` bytes (never inside an escape sequence or a UTF-8 character).

    A line of several MB is a few huge strings (a file read, a command's output, often
    twice: in the message and in ``toolUseResult``) in a small structure.  Parsing the
    skeleton instead of the line keeps what the columns and derived tables need at a
    fraction of the memory.  Returns ``line`` itself when no string is that long, or when
    a part it would cut is not valid in a JSON string (bad UTF-8, a control character, a
    bad escape): the caller's parser then reads the whole line and says what is wrong.
    """
    pieces = []
    copied = 0
    find = line.find
    start = find(b'"')
    while start >= 0:
        end = find(b'"', start + 1)
        while end > 0 and _escaped(line, end):
            end = find(b'"', end + 1)
        if end < 0:
            break  # an unterminated string: not JSON, the caller's parser says so
        if end - start - 1 > keep:
            cut = _safe_cut(line, start + 1, start + 1 + keep)
            if not _valid_in_string(line, cut, end):
                return line
            pieces.append(line[copied:cut])
            pieces.append(b'"')
            copied = end + 1
        start = find(b'"', end + 1)
    if not pieces:
        return line
    pieces.append(line[copied:])
    return b"".join(pieces)


# The inside of a JSON string: runs of plain characters and valid escapes, nothing else.
_STRING_CONTENT = re.compile(rb'(?:[^"\\\x00-\x1f]++|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*+')


def _valid_in_string(line: bytes, start: int, end: int) -> bool:
    """Whether line[start:end], the inside of a JSON string from a character boundary
    that is not within an escape, is valid JSON string content and valid UTF-8."""
    if _STRING_CONTENT.fullmatch(line, start, end) is None:
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for i in range(start, end, 1 << 20):
            decoder.decode(line[i : min(i + (1 << 20), end)], final=i + (1 << 20) >= end)
    except UnicodeDecodeError:
        return False
    return True


def _escaped(line: bytes, quote: int) -> bool:
    """Whether the quote at this index is escaped (an odd run of backslashes before it)."""
    i = quote - 1
    while i >= 0 and line[i] == 0x5C:  # backslash
        i -= 1
    return (quote - 1 - i) % 2 == 1


def _safe_cut(line: bytes, first: int, cut: int) -> int:
    """cut, moved back so that line[first:cut] ends neither inside an escape sequence
    (``\\x``, ``\\uXXXX``, a surrogate pair) nor inside a UTF-8 character."""
    for i in range(max(first, cut - 12), cut):
        if line[i] == 0x5C and not _escaped(line, i):
            length = 6 if line[i + 1 : i + 2] == b"u" else 2
            if length == 6 and line[i + 2 : i + 4].lower() in (b"d8", b"d9", b"da", b"db"):
                length = 12  # a high surrogate: keep it with its pair or not at all
            if i + length > cut:
                cut = i
                break
    while cut > first and line[cut] & 0xC0 == 0x80:
        cut -= 1
    return cut


def _s(value: Any) -> str | None:
    """A value as TEXT for a column: strings as they are, other scalars via str()."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


def _b(value: Any) -> int | None:
    if value is None:
        return None
    return 1 if value else 0


def content_text(content: Any) -> str:
    """Flatten a message ``content`` (string or list of blocks) into searchable text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return _s(content) or ""
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
            continue
        if not isinstance(block, dict):
            continue
        btype = block.get("type")
        if btype == "text":
            parts.append(_s(block.get("text")) or "")
        elif btype == "thinking":
            parts.append(_s(block.get("thinking")) or "")
        elif btype == "redacted_thinking":
            parts.append("[redacted thinking]")
        elif btype in ("tool_use", "server_tool_use"):
            inp = block.get("input")
            parts.append(f"{block.get('name') or ''} {_s(inp) if inp is not None else ''}".strip())
        elif btype == "tool_result" or btype == "web_search_tool_result":
            parts.append(content_text(block.get("content")))
        elif btype == "image":
            source = block.get("source") or {}
            media = source.get("media_type") if isinstance(source, dict) else None
            parts.append(f"[image: {media or 'unknown'}]")
        elif btype == "document":
            parts.append("[document]")
        elif btype == "tool_reference":
            parts.append(_s(block.get("tool_name") or block.get("name")) or "")
        elif "text" in block:
            parts.append(_s(block.get("text")) or "")
    return "\n".join(p for p in parts if p)


def _user_kind(content: Any) -> str:
    """prompt, command or context (see ingest.prompts): IDE context, reminders and
    slash-command records are not prompts.  A pasted image counts as typed."""
    if isinstance(content, str):
        return kind_of_user_text(content)
    if not isinstance(content, list):
        return "prompt"
    texts = []
    for block in content:
        if not isinstance(block, dict):
            continue
        btype = block.get("type")
        if btype == "text":
            texts.append(_s(block.get("text")) or "")
        elif btype is not None:
            return "prompt"  # an image, a document...
    return kind_of_user_text("\n".join(texts)) if texts else "prompt"


def _kind(rtype: Any, obj: dict[str, Any], message: dict[str, Any]) -> str:
    if rtype == "user":
        if obj.get("isCompactSummary"):
            return "summary"
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content
        ):
            return "tool_result"
        if obj.get("isMeta"):
            return "meta"
        return _user_kind(content)
    if rtype == "assistant":
        types = {b.get("type") for b in message.get("content") or [] if isinstance(b, dict)}
        if "text" in types:
            return "answer"
        if types & {"tool_use", "server_tool_use"}:
            return "tool_use"
        if types & {"thinking", "redacted_thinking"}:
            return "thinking"
        return "answer"
    if rtype == "system":
        return "system"
    if rtype == "summary":
        return "summary"
    if rtype in TITLE_FIELDS:
        return "title"
    return "other"


def record_text(obj: dict[str, Any]) -> str:
    """The searchable text of a parsed record ('' when it has none)."""
    rtype = obj.get("type")
    message = obj.get("message")
    if isinstance(message, dict) and rtype in ("user", "assistant"):
        return content_text(message.get("content"))
    if rtype == "system":
        return _s(obj.get("content")) or ""
    if rtype == "summary":
        return _s(obj.get("summary")) or ""
    if rtype in TITLE_FIELDS:
        return _s(obj.get(TITLE_FIELDS[rtype])) or ""
    if rtype == "queue-operation":
        return content_text(obj.get("content"))
    if rtype == "last-prompt":
        return _s(obj.get("lastPrompt")) or ""
    if rtype == "attachment":
        att = obj.get("attachment")
        if isinstance(att, dict):
            for key in ("content", "prompt", "stdout", "stderr"):
                if isinstance(att.get(key), str):
                    return att[key]
    return ""


def extract(obj: dict[str, Any]) -> tuple:
    """The EVENT_COLUMNS values for a parsed record."""
    get = obj.get
    rtype = get("type")
    message = get("message")
    if not isinstance(message, dict):
        message = _NO_MESSAGE
    subtype = get("subtype")
    if subtype is None:
        for key in ("attachment", "data"):
            inner = get(key)
            if isinstance(inner, dict) and inner.get("type") is not None:
                subtype = inner.get("type")
                break
    timestamp = get("timestamp")
    if timestamp is None and isinstance(get("snapshot"), dict):
        timestamp = obj["snapshot"].get("timestamp")
    text = record_text(obj)
    # (strings are by far the common case: _s is called only for the others; written
    # out field by field, a generator here cost a tenth of the line's extract)
    uuid, parent, session, agent, cwd, branch, version, request = map(get, _STRING_KEYS)
    role, model, message_id, stop_reason = map(message.get, _MESSAGE_KEYS)
    if uuid is not None and uuid.__class__ is not str:
        uuid = _s(uuid)
    if parent is not None and parent.__class__ is not str:
        parent = _s(parent)
    if session is not None and session.__class__ is not str:
        session = _s(session)
    if agent is not None and agent.__class__ is not str:
        agent = _s(agent)
    if cwd is not None and cwd.__class__ is not str:
        cwd = _s(cwd)
    if branch is not None and branch.__class__ is not str:
        branch = _s(branch)
    if version is not None and version.__class__ is not str:
        version = _s(version)
    if request is not None and request.__class__ is not str:
        request = _s(request)
    if role is not None and role.__class__ is not str:
        role = _s(role)
    if model is not None and model.__class__ is not str:
        model = _s(model)
    if message_id is not None and message_id.__class__ is not str:
        message_id = _s(message_id)
    if stop_reason is not None and stop_reason.__class__ is not str:
        stop_reason = _s(stop_reason)
    return (
        rtype if rtype is None or rtype.__class__ is str else _s(rtype),
        subtype if subtype is None or subtype.__class__ is str else _s(subtype),
        _kind(rtype, obj, message),
        uuid,
        parent,
        session,
        agent,
        _b(get("isSidechain")),
        _b(get("isMeta")),
        timestamp if timestamp is None or timestamp.__class__ is str else _s(timestamp),
        cwd,
        branch,
        version,
        role,
        model,
        message_id,
        request,
        stop_reason,
        _s(get("leafUuid")) if rtype == "summary" else None,
        text or None,
    )


_NO_MESSAGE: dict[str, Any] = {}  # (read only)
_STRING_KEYS = (
    "uuid", "parentUuid", "sessionId", "agentId", "cwd", "gitBranch", "version", "requestId"
)  # fmt: skip
_MESSAGE_KEYS = ("role", "model", "id", "stop_reason")


ERROR_COLUMNS = (
    tuple(None for _ in EVENT_COLUMNS[:2]) + ("error",) + tuple(None for _ in EVENT_COLUMNS[3:])
)


def tool_uses(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """tool_use blocks of an assistant record."""
    message = obj.get("message")
    if obj.get("type") != "assistant" or not isinstance(message, dict):
        return []
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [
        b
        for b in content
        if isinstance(b, dict) and b.get("type") in ("tool_use", "server_tool_use") and b.get("id")
    ]


def tool_results(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """tool_result blocks of a user record."""
    message = obj.get("message")
    if obj.get("type") != "user" or not isinstance(message, dict):
        return []
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [
        b
        for b in content
        if isinstance(b, dict) and b.get("type") == "tool_result" and b.get("tool_use_id")
    ]


class NewEvent:
    """An events row the sync engine just inserted, handed to the derivers (same transaction).

    ``cols`` follows EVENT_COLUMNS with session_id already filled from the file when the
    record has none; ``obj`` is the parsed record (never None: malformed lines are not
    passed to derivers).
    """

    __slots__ = ("event_id", "file_id", "obj", "cols", "host")

    def __init__(self, event_id: int, file_id: int, obj: dict[str, Any], cols: tuple, host: str):
        self.event_id = event_id
        self.file_id = file_id
        self.obj = obj
        self.cols = cols
        self.host = host

    def col(self, name: str) -> Any:
        return self.cols[EVENT_COLUMNS.index(name)]


# A line at least this long is "huge" (a tool output of MBs): it goes in a transaction of
# its own, is parsed from its skeleton (strings cut to KEEP_BYTES, see parse.skeleton) and
# written through SQLite's blob I/O, so that memory stays near twice its size instead of
# six times.  Its ``text`` and its tool call's ``result`` keep the first KEEP_BYTES of each
# long string; ``raw`` keeps every byte.  Afterwards freed memory goes back to the OS.
HUGE_BYTES = 1 << 20
KEEP_BYTES = 256 << 10


def is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def without_surrogates(value):
    """The parsed value with lone surrogates (which SQLite and orjson refuse) replaced."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {without_surrogates(k): without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_surrogates(v) for v in value]
    return value


# What parsing a hostile line can raise besides LineError: nesting deeper than a parser
# allows (RecursionError from json, orjson's own limit is a JSONDecodeError), a shape
# extract did not expect.  parse turns each into a LineError: the line is archived as
# an error row, the pass goes on.
PARSE_FAULTS = (RecursionError, ValueError, TypeError, KeyError, IndexError, AttributeError)


def parse(line: bytes):
    """(obj, cols) for a good line; raises LineError (and nothing else) for a bad one.

    orjson rejects lone UTF-16 surrogates in escapes (a cut emoji), which real
    transcripts contain; such lines are valid JSON, so fall back to the json module.
    A huge line is parsed from its skeleton when that is JSON, else whole.
    """
    try:
        return _parse(line)
    except LineError:
        raise
    except RecursionError:
        raise LineError("nested deeper than the parser allows") from None
    except PARSE_FAULTS as e:
        raise LineError(f"cannot be parsed: {type(e).__name__}: {e}") from None


def _not_json(name: str):
    raise ValueError(f"{name} is not JSON")


def _parse(line: bytes):
    if len(line) >= HUGE_BYTES:
        small = skeleton(line, KEEP_BYTES)
        if small is not line:
            try:
                obj = parse_line(small)
                return obj, extract(obj)
            except LineError:
                pass  # parsed whole below: the error (or the surrogates) is in the line
    obj = load_record(line)
    return obj, extract(obj)


def load_record(line: bytes) -> dict[str, Any]:
    """The line's object, as the engine reads it: orjson, else (lone surrogates in
    escapes, which orjson refuses) the json module with the surrogates replaced; raises
    LineError.  The one parse of a line, for the engine, the transcript page and every
    replay."""
    try:
        return parse_line(line)
    except LineError as e:
        try:
            # NaN and Infinity are not JSON (SQLite's json functions refuse such a line)
            obj = json.loads(line.decode("utf-8"), parse_constant=_not_json)
        except (UnicodeDecodeError, ValueError):
            raise e from None
        if not isinstance(obj, dict):
            raise
        return without_surrogates(obj)


def leaf_uuid(line: bytes | None) -> str | None:
    """A summary line's leafUuid (the events.leaf_uuid column), or None."""
    try:
        obj = load_record(line or b"")
    except (LineError, RecursionError):
        return None
    return _s(obj.get("leafUuid"))


def tail_is_complete(tail: bytes) -> bool:
    """An unterminated last line that is already a whole JSON object or array."""
    if tail.rstrip()[-1:] not in (b"}", b"]"):
        return False
    try:
        orjson.loads(tail)
    except orjson.JSONDecodeError:
        return False
    return True
