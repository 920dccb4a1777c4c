"""ingest.parse against the hand-made fixtures."""

from __future__ import annotations

import pytest

from ingest.parse import EVENT_COLUMNS, LineError, extract, parse_line

from .conftest import FIXTURES

KIND = EVENT_COLUMNS.index("kind")
TEXT = EVENT_COLUMNS.index("text")
TYPE = EVENT_COLUMNS.index("type")


def lines(name: str) -> list[bytes]:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"fixture {path} not found")
    return [line for line in path.read_bytes().split(b"\n") if line]


def columns(line: bytes) -> dict:
    return dict(zip(EVENT_COLUMNS, extract(parse_line(line)), strict=True))


def test_edge_cases_non_objects_are_line_errors():
    errors = []
    for line in lines("edge_cases.jsonl"):
        try:
            parse_line(line)
        except LineError as e:
            errors.append((line, str(e)))
    assert [line for line, _ in errors] == [b'"massive error"', b"42", b"[1]"]
    assert "str" in errors[0][1] and "list" in errors[2][1]
    assert all("\n" not in message for _, message in errors)


def test_edge_cases_objects_parse():
    parsed = []
    for line in lines("edge_cases.jsonl"):
        try:
            parsed.append(columns(line))
        except LineError:
            continue
    assert len(parsed) == 16
    assert {c["session_id"] for c in parsed if c["type"] in ("user", "assistant")} == {
        "edge_cases",
        "todowrite_session",
    }
    # the misspelt timestamp key leaves the column empty instead of failing
    assert any(c["timestamp"] is None and c["type"] == "user" for c in parsed)
    assert parsed[-1]["type"] == "summary" and parsed[-1]["kind"] == "summary"
    assert parsed[-1]["text"].startswith("Tested various edge cases")


def test_bad_json_and_invalid_utf8():
    with pytest.raises(LineError, match="invalid JSON"):
        parse_line(b'{"type": "user", "mess')
    with pytest.raises(LineError, match="invalid UTF-8"):
        parse_line(b'{"type": "user", "x": "\xff\xfe"}')
    with pytest.raises(LineError, match="not an object"):
        parse_line(b"null")


def test_image_becomes_placeholder():
    (line,) = lines("messages/user/image.jsonl")
    cols = columns(line)
    assert cols["kind"] == "prompt"
    assert "[image: image/png]" in cols["text"]
    assert "base64" not in cols["text"] and len(cols["text"]) < 1000


@pytest.mark.parametrize(
    "name, kind",
    [
        ("messages/assistant/thinking.jsonl", "thinking"),
        ("messages/assistant/assistant.jsonl", "answer"),
        ("messages/tools/Bash-tool_use.jsonl", "tool_use"),
        ("messages/tools/Bash-tool_result.jsonl", "tool_result"),
        ("messages/system/summary.jsonl", "summary"),
        ("messages/system/queue_operation.jsonl", "other"),
        ("messages/user/user.jsonl", "prompt"),
    ],
)
def test_kinds(name, kind):
    (line,) = lines(name)[:1]
    assert columns(line)["kind"] == kind


def test_tool_use_text_has_name_and_input():
    (line,) = lines("messages/tools/Bash-tool_use.jsonl")[:1]
    cols = columns(line)
    assert cols["text"].startswith("Bash ")
    assert '"command"' in cols["text"]


def test_queue_operation_text_and_session():
    (line,) = lines("messages/system/queue_operation.jsonl")[:1]
    cols = columns(line)
    assert cols["type"] == "queue-operation"
    assert cols["text"] == "/init"
    assert cols["session_id"] == "7acd37a8-2745-4b58-a8a9-46164b22ad9e"


def test_unknown_type_is_a_normal_row():
    cols = columns(b'{"type": "brand-new-thing", "sessionId": "s1", "foo": 1}')
    assert cols["type"] == "brand-new-thing"
    assert cols["kind"] == "other"
    assert cols["session_id"] == "s1"
