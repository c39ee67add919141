"""Strict JSON and JSONL readers (naming the file and line of every error; refusing text that is not
UTF-8 and an object that names a key twice, which ``json.loads`` would keep silently) and writers
that survive an interruption: appends flushed line by line, a torn last line repaired, atomic replaces.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class JsonlFormatError(ValueError):
    """A JSONL file that breaks the format; the message names the file and the line."""


class JsonDuplicateKeyError(JsonlFormatError):
    """A JSON object that names one key twice; the message names the file, the line and the key."""


class _DuplicateKey(ValueError):
    """Raised by :func:`_refuse_duplicates`; ``args[0]`` is the key."""


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` of the strict readers: a dict, unless a key comes twice."""
    record = dict(pairs)
    if len(record) < len(pairs):  # name the first key that comes again
        keys = [key for key, _ in pairs]
        raise _DuplicateKey(next(key for i, key in enumerate(keys) if key in keys[:i]))
    return record


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_KEY_COLON = re.compile(r"\s*:")


def _second_key_line(text: str, key: str) -> int:
    """The line (from 1) where ``key`` comes a second time in one object of a valid JSON text."""
    stack: list[set[str] | None] = []  # the keys seen in each open object; None for an array
    position = 0
    for match in _JSON_STRING.finditer(text):
        for char in text[position : match.start()]:
            if char == "{":
                stack.append(set())
            elif char == "[":
                stack.append(None)
            elif char in "}]" and stack:
                stack.pop()
        position = match.end()
        if stack and stack[-1] is not None and _KEY_COLON.match(text, match.end()):
            name = json.loads(match.group(0))
            if name == key and name in stack[-1]:
                return text.count("\n", 0, match.start()) + 1
            stack[-1].add(name)
    return 1


def loads_json(text: str, where: str, first_line: int = 1) -> Any:
    """Parse one JSON document, refusing an object that names a key twice; ``where`` and ``first_line``
    (of a JSONL record) place it in messages.

    Raises:
        JsonDuplicateKeyError: ``<where> line N: key 'label' appears twice in one object ...``.
        JsonlFormatError: ``<where> line N: malformed JSON (...)``.
    """
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates)
    except json.JSONDecodeError as exc:
        line = first_line + exc.lineno - 1
        raise JsonlFormatError(f"{where} line {line}: malformed JSON ({exc.msg} at column {exc.colno})") from None
    except _DuplicateKey as dup:
        key = dup.args[0]
        line = first_line + _second_key_line(text, key) - 1
        raise JsonDuplicateKeyError(
            f"{where} line {line}: key {key!r} appears twice in one object "
            "(JSON readers would keep the last value silently)"
        ) from None


def read_json(path: str | Path) -> Any:
    """One JSON document from a UTF-8 file (a leading byte-order mark is dropped), strictly.

    Raises:
        FileNotFoundError: the file does not exist.
        JsonlFormatError: the file is not UTF-8 (:class:`JsonlEncodingError`) or not JSON (naming the
            file and the line), or :class:`JsonDuplicateKeyError`: an object names a key twice.
    """
    path = Path(path)
    return loads_json(_decode(path.read_bytes().removeprefix(codecs.BOM_UTF8), path), str(path))


def dumps_line(record: Mapping[str, Any]) -> str:
    """One record as one JSON line (UTF-8 kept, keys in the record's order, no newline inside)."""
    return json.dumps(record, ensure_ascii=False)


_OTHER_BOMS = (codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)  # BOM_UTF16_LE starts BOM_UTF32_LE
_LINE_BREAK = re.compile(r"\r\n?|\n")  # the universal newlines that text-mode reading split on


class JsonlEncodingError(JsonlFormatError):
    """A JSONL file that is not UTF-8; the message names the file, the line and the byte."""


def _decode(data: bytes, path: Path) -> str:
    """A JSONL file's bytes as text, strictly UTF-8; a refusal names the line (a lone \\r ends one too)."""
    if data.startswith(_OTHER_BOMS):
        raise JsonlEncodingError(
            f"{path} line 1: not UTF-8 (it starts with a UTF-16 or UTF-32 byte-order mark; save the file as UTF-8)"
        )
    nul = data.find(b"\x00")
    try:
        text = data[: nul if nul >= 0 else None].decode("utf-8")  # up to the first NUL, if any
    except UnicodeDecodeError as exc:
        lines = _LINE_BREAK.split(data[: exc.start].decode("utf-8"))  # the last one holds the bad byte
        raise JsonlEncodingError(
            f"{path} line {len(lines)}: not UTF-8 (byte 0x{data[exc.start]:02x} at byte "
            f"{len(lines[-1].encode('utf-8')) + 1} of the line: {exc.reason}; save the file as UTF-8)"
        ) from None
    if nul >= 0:
        raise JsonlEncodingError(
            f"{path} line {len(_LINE_BREAK.split(text))}: not UTF-8 (NUL bytes, as UTF-16 or UTF-32 text has; "
            "save the file as UTF-8)"
        )
    return text


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)`` for each non-blank line of ``path``, decoded strictly as
    UTF-8 (a leading byte-order mark is dropped); lines end at ``\n``, ``\r\n`` or a lone ``\r``.

    Raises:
        FileNotFoundError: the file does not exist.
        JsonlFormatError: ``<file> line N: ...``: a line that is not a JSON object; its subclasses
            :class:`JsonlEncodingError` (not UTF-8, before any record) and :class:`JsonDuplicateKeyError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"JSONL file {path} does not exist")
    text = _decode(path.read_bytes().removeprefix(codecs.BOM_UTF8), path)
    for lineno, line in enumerate(_LINE_BREAK.split(text), start=1):
        if line.strip():
            record = loads_json(line, str(path), lineno)
            if not isinstance(record, dict):
                raise JsonlFormatError(f"{path} line {lineno}: expected a JSON object, got {type(record).__name__}")
            yield lineno, record


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All records of a JSONL file, in file order (see :func:`iter_jsonl` for the errors)."""
    return [record for _, record in iter_jsonl(path)]


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def repair_torn_tail(path: str | Path) -> int:
    """Truncate an interrupted last line away (one without its newline, or not a JSON object);
    return the number of bytes removed (0 if none). Earlier lines are left for :func:`read_jsonl`
    to report; a missing file is left missing."""
    path = Path(path)
    data = path.read_bytes() if path.is_file() else b""
    start = data.rfind(b"\n", 0, len(data) - 1) + 1  # where the last line begins
    last = data[start:]
    keep = start if not last.endswith(b"\n") or (last.strip() and not _is_json_object(last)) else len(data)
    removed = len(data) - keep
    if removed:
        with path.open("r+b") as handle:
            handle.truncate(keep)
            os.fsync(handle.fileno())
        logger.warning(
            "%s: removed a torn last line (%d bytes) left by an interrupted write; its record will be redone",
            path,
            removed,
        )
    return removed


class JsonlAppender:
    """Append records to a JSONL file (a context manager), each line flushed to the OS, so a killed
    process loses at most the line it was writing; a record that cannot be encoded writes nothing."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._handle: Any = None
        self.written = 0

    def __enter__(self) -> JsonlAppender:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8")
        return self

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record and flush it."""
        if self._handle is None:
            raise RuntimeError(f"JsonlAppender for {self.path} is not open; use it in a `with` block")
        line = dumps_line(record) + "\n"  # encode first: a failure leaves the file untouched
        self._handle.write(line)
        self._handle.flush()
        self.written += 1

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None


def atomic_write(path: str | Path, text: str) -> Path:
    """Write a text file atomically (a fsynced temporary file renamed over ``path``): readers see the old
    file or the complete new one; on an error ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_jsonl_atomic(records: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write ``records`` to ``path`` as JSONL, atomically (see :func:`atomic_write`)."""
    return atomic_write(path, "".join(dumps_line(record) + "\n" for record in records))


def sha256_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes (checksums of caches and published results)."""
    import hashlib

    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


MANIFEST = "MANIFEST.json"  # written last into a folder the library made (model cache, published results)


def file_checksums(folder: Path) -> dict[str, str]:
    """``{path relative to folder: SHA-256}`` of every file below ``folder`` but its :data:`MANIFEST`."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in files if p != folder / MANIFEST}


def unlisted_files(folder: Path, listed: Iterable[str]) -> list[str]:
    """What below ``folder`` (files and links, relative, sorted) is neither its :data:`MANIFEST` nor
    ``listed``: a folder holding any is not only what the library wrote, so it is never replaced or deleted."""
    known = {*listed, MANIFEST}
    below = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_symlink() or not p.is_dir())
    return sorted(name for name in below if name not in known)


def write_json_atomic(document: Mapping[str, Any], path: str | Path, **dump_options: Any) -> Path:
    """Write ``document`` as indented JSON (``json.dumps`` options pass through), atomically."""
    return atomic_write(path, json.dumps(document, indent=2, **dump_options) + "\n")
