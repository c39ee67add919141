"""JSONL utilities: strict reading with line numbers, torn-tail repair, appending, atomic writes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from persrm_lib.core.jsonl import (
    JsonlAppender,
    JsonlEncodingError,
    JsonlFormatError,
    dumps_line,
    iter_jsonl,
    read_jsonl,
    repair_torn_tail,
    write_jsonl_atomic,
)


def test_read_jsonl_skips_blank_lines_and_keeps_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert list(iter_jsonl(path)) == [(1, {"a": 1}), (3, {"a": 2})]
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # broken JSON on line 2
        ('{"a": 1}\n{"a": \n', r"x.jsonl line 2: malformed JSON \(Expecting value at column 7\)"),
        # a JSON value that is not an object
        ('{"a": 1}\n\n[1, 2]\n', "x.jsonl line 3: expected a JSON object, got list"),
        # a bare string
        ('"text"\n', "x.jsonl line 1: expected a JSON object, got str"),
    ],
)
def test_read_jsonl_bad_lines_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(content)
    with pytest.raises(JsonlFormatError, match=message):
        read_jsonl(path)


def test_read_jsonl_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="JSONL file .*nope.jsonl does not exist"):
        read_jsonl(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    ("content", "removed", "left"),
    [
        # intact file: nothing to do
        ('{"a": 1}\n{"a": 2}\n', 0, '{"a": 1}\n{"a": 2}\n'),
        # last line cut before its newline
        ('{"a": 1}\n{"a": 2', 7, '{"a": 1}\n'),
        # last line complete JSON but its newline lost: still torn (the next append would join it)
        ('{"a": 1}\n{"a": 2}', 8, '{"a": 1}\n'),
        # last line has a newline but half an object (buffered write cut short)
        ('{"a": 1}\n{"a": \n', 7, '{"a": 1}\n'),
        # the only line is torn
        ('{"a', 3, ""),
        # empty file
        ("", 0, ""),
    ],
)
def test_repair_torn_tail(tmp_path: Path, content: str, removed: int, left: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(content)
    assert repair_torn_tail(path) == removed
    assert path.read_text() == left


def test_repair_torn_tail_logs_and_leaves_middle_lines_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 3}\n{"a"')
    with caplog.at_level(logging.WARNING, logger="persrm_lib.core.jsonl"):
        assert repair_torn_tail(path) == 4
    assert "removed a torn last line (4 bytes)" in caplog.text
    # the bad middle line is not an interrupted write: the reader reports it
    with pytest.raises(JsonlFormatError, match="line 2: malformed JSON"):
        read_jsonl(path)
    assert repair_torn_tail(tmp_path / "missing.jsonl") == 0


def test_appender_flushes_each_line(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x.jsonl"
    with JsonlAppender(path) as out:
        out.write({"id": 1, "text": "é"})
        # visible to a reader before the appender closes
        assert path.read_text(encoding="utf-8") == '{"id": 1, "text": "é"}\n'
        out.write({"id": 2})
    with JsonlAppender(path) as out:
        out.write({"id": 3})
    assert [r["id"] for r in read_jsonl(path)] == [1, 2, 3]
    assert out.written == 1


def test_appender_rejects_unencodable_records_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    with JsonlAppender(path) as out:
        out.write({"id": 1})
        with pytest.raises(TypeError, match="not JSON serializable"):
            out.write({"id": 2, "bad": object()})
    assert path.read_text() == '{"id": 1}\n'
    with pytest.raises(RuntimeError, match="is not open"):
        JsonlAppender(path).write({"id": 3})


def test_write_jsonl_atomic_replaces_whole_file_and_cleans_up(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    write_jsonl_atomic([{"id": 1}, {"id": 2}], path)
    assert path.read_text() == '{"id": 1}\n{"id": 2}\n'

    def records():
        yield {"id": 3}
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_jsonl_atomic(records(), path)
    assert path.read_text() == '{"id": 1}\n{"id": 2}\n'  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jsonl"]  # no temporary left


def test_dumps_line_keeps_order_and_unicode() -> None:
    assert dumps_line({"b": 1, "a": "ü\nx"}) == '{"b": 1, "a": "ü\\nx"}'


# --- encodings (issue 13, item 2) ------------------------------------------------------------------

LINES = '{"id": 1, "text": "plain"}\n{"id": 2, "text": "café au lait"}\n'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # Latin-1: é is the lone byte 0xe9, the 23rd byte of line 2
        (
            LINES.encode("latin-1"),
            "x.jsonl line 2: not UTF-8 (byte 0xe9 at byte 23 of the line: invalid continuation byte; "
            "save the file as UTF-8)",
        ),
        # UTF-16 with its byte-order mark (what Windows tools write as "Unicode")
        (
            LINES.encode("utf-16"),
            "x.jsonl line 1: not UTF-8 (it starts with a UTF-16 or UTF-32 byte-order mark; save the file as UTF-8)",
        ),
        (
            LINES.encode("utf-16-be"),  # no byte-order mark: the NUL bytes give it away
            "x.jsonl line 1: not UTF-8 (NUL bytes, as UTF-16 or UTF-32 text has; save the file as UTF-8)",
        ),
        (
            LINES.encode("utf-32"),
            "x.jsonl line 1: not UTF-8 (it starts with a UTF-16 or UTF-32 byte-order mark; save the file as UTF-8)",
        ),
        # a lone \r ends a line (as text-mode reading did): the bad byte is on line 3
        (
            b'{"a": 1}\r{"a": 2}\r{"t": "\xe9"}\r',
            "x.jsonl line 3: not UTF-8 (byte 0xe9 at byte 8 of the line: invalid continuation byte; "
            "save the file as UTF-8)",
        ),
        # a truncated multi-byte sequence at the end of a line
        (
            b'{"a": 1}\n{"t": "\xc3"}\n',
            "x.jsonl line 2: not UTF-8 (byte 0xc3 at byte 8 of the line: invalid continuation byte; "
            "save the file as UTF-8)",
        ),
    ],
)
def test_files_that_are_not_utf8_are_refused_naming_the_line(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(data)
    with pytest.raises(JsonlEncodingError) as info:
        read_jsonl(path)
    assert str(info.value) == f"{tmp_path}/{message}"
    assert isinstance(info.value, JsonlFormatError)  # every reader that catches format errors catches it


def test_a_utf8_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Decision (issue 13): a UTF-8 BOM at the start of the file is dropped and the file is read."""
    path = tmp_path / "x.jsonl"
    path.write_bytes(LINES.encode("utf-8-sig"))
    assert read_jsonl(path) == [{"id": 1, "text": "plain"}, {"id": 2, "text": "café au lait"}]
    # only at the start: a BOM inside the file is not an encoding marker, and stays an error
    path.write_bytes(b'{"a": 1}\n' + "\ufeff".encode() + b'{"a": 2}\n')
    with pytest.raises(JsonlFormatError, match=r"x.jsonl line 2: malformed JSON \(Unexpected UTF-8 BOM"):
        read_jsonl(path)


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": 1}\r\n\r\n{"a": 2}\r\n',  # Windows line ends, a blank line
        b'{"a": 1}\r\r{"a": 2}',  # old Mac line ends, no final break
        b'{"a": 1}\n\n{"a": 2}\n',
    ],
)
def test_line_numbers_follow_universal_newlines(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(data)
    assert list(iter_jsonl(path)) == [(1, {"a": 1}), (3, {"a": 2})]


def test_unicode_line_separators_inside_strings_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"t": "a\u2028b\x85c"}\n', encoding="utf-8")  # not line breaks in JSONL
    assert read_jsonl(path) == [{"t": "a\u2028b\x85c"}]
