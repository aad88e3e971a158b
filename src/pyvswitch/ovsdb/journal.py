r"""The journal the configuration database persists to: append-only and crash-safe.

The journal stores JSON objects and knows nothing of what they mean. Its file
starts with a *snapshot* (the whole state at some moment) followed by
*records* (what changed since, in order). The database replays the records
over the snapshot when it opens the file, appends one record per committed
transaction, and now and then *compacts*: it replaces the whole file by one
new snapshot, so that the file does not grow without bound.

Format (version 1)
    A text file of entries, framed as Open vSwitch frames its own database
    log (``ovsdb/log.c``), with SHA-256 instead of SHA-1::

        PVSDB JSON <length> <sha256-hex>\n
        <JSON text of <length> bytes>\n

    ``<length>`` is a decimal count of bytes without leading zeros and
    ``<sha256-hex>`` is the lower-case SHA-256 of exactly those bytes. The
    JSON text is one line of pure ASCII (non-ASCII characters are written as
    ``\u`` escapes), so no entry contains a newline byte except the two that
    frame it. The first entry is ``{"format": "pvsdb-journal", "version": 1,
    "snapshot": {...}}``; every later entry is a record exactly as it was
    appended.

What a crash can leave, and what opening does about it
    :meth:`Journal.append` returns only after the entry was written and
    ``fsync``-ed, so every acknowledged record is on the disk, and only the
    one entry being written when the process died can be incomplete. Opening
    therefore discards one unfinished entry at the end of the file (a
    *torn tail*: a cut header, an entry shorter than its header says, or an
    entry of the right size whose bytes never reached the disk) and truncates
    the file back to the last complete entry before anything new is appended,
    logging a warning. Whatever else is wrong (a bad checksum or header
    before the last entry, more bytes after a damaged entry than one entry
    could hold, a damaged snapshot) raises :class:`JournalError` with the file,
    the offset of the entry and the reason: silently dropping the entries
    after the damage would drop records that were acknowledged.

    The snapshot entry is never torn, because a file with a new snapshot is
    always written beside the journal and renamed over it (a crash leaves
    either the old file or the new one, never a mixture), and a missing file
    is created the same way.

One writer
    A journal holds an exclusive ``flock`` on a lock file beside it
    (``.<name>.~lock~``, as ``ovsdb-server`` does), because two writers
    appending to one file would interleave their entries. The lock is on a
    separate file because compaction replaces the journal file itself, and a
    lock on the replaced file would no longer protect the new one. A second
    :meth:`Journal.open` of the same file, even in the same process, raises
    :class:`JournalError` until the first journal is closed.

A journal is not thread-safe; the daemon's single event loop owns it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Final

__all__ = ["FORMAT_VERSION", "Journal", "JournalError"]

logger = logging.getLogger(__name__)

FORMAT_VERSION: Final = 1
_FORMAT_NAME: Final = "pvsdb-journal"

_MAGIC: Final = b"PVSDB JSON"
# The whole header line, newline included. Leading zeros are refused so that
# each length has exactly one spelling, and 19 digits bound the number that
# is parsed before it is compared with the size of the file.
_HEADER: Final = re.compile(rb"PVSDB JSON (0|[1-9][0-9]{0,18}) ([0-9a-f]{64})\n")
_MAX_HEADER: Final = len(_MAGIC) + 1 + 19 + 1 + 64 + 1
_NEWLINE: Final = 0x0A


class JournalError(Exception):
    """A journal file that cannot be used; the message names the file, the offset and the reason.

    ``offset`` is the byte offset of the entry at fault, or None when the
    problem is not at one place in the file (a lock held by someone else, a
    directory that does not exist).
    """

    def __init__(
        self, reason: str, *, path: Path | None = None, offset: int | None = None
    ) -> None:
        where = "" if path is None else f"{path}: "
        at = "" if offset is None else f"offset {offset}: "
        super().__init__(f"{where}{at}{reason}")
        self.reason = reason
        self.path = path
        self.offset = offset


class _BadEntryError(Exception):
    """An entry that is not complete and intact; the caller decides whether it is a torn tail."""


class Journal:
    """An open journal file; make one with :meth:`Journal.open`."""

    def __init__(self, path: Path, fd: int, lock_fd: int, size: int) -> None:
        self._path = path
        self._fd: int | None = fd
        self._lock_fd: int | None = lock_fd
        self._size = size
        # Why appends are refused after a failed write, fsync or compaction;
        # None while the journal is healthy.
        self._broken: str | None = None

    @classmethod
    def open(
        cls, path: Path, initial: dict[str, Any]
    ) -> tuple[Journal, dict[str, Any], list[dict[str, Any]]]:
        """Open the journal, creating it with snapshot `initial` if it is missing.

        Returns the journal, the snapshot and the records after the snapshot.

        A torn last entry is discarded and cut off the file (see the module
        documentation); any other damage raises :class:`JournalError`, as does
        a journal that another :class:`Journal` holds open. When the file is
        created, the snapshot returned is ``initial`` as read back from the
        file, so it is the same value a later open returns (tuples become
        lists, non-string keys become strings).
        """
        path = Path(path)
        lock_fd = _lock(path)
        try:
            snapshot, records, fd, size = _open_locked(path, initial)
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(path, fd, lock_fd, size), snapshot, records

    def append(self, record: dict[str, Any]) -> None:
        """Append one record; it is on the disk when this returns (write, then fsync).

        A record that is not JSON-able raises ``TypeError`` or ``ValueError``
        before anything is written, and the journal stays usable. A failed
        write or fsync raises :class:`JournalError` and makes the journal
        refuse further appends (see the comment below); reopening the file
        recovers it.
        """
        fd = self._writable()
        data = _encode(record)
        try:
            _write_all(fd, data, self._size)
            os.fsync(fd)
        except OSError as exc:
            # A failed write may have left part of the entry in the file, so
            # it is cut off to keep later entries from following a damaged
            # one. After a failed fsync the kernel may already have dropped
            # the dirty pages and a second fsync could succeed without them
            # ever reaching the disk, so no further append is trusted: only a
            # reopen, which reads what really is in the file, may continue.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._size)
            self._broken = f"an earlier append failed ({exc})"
            raise JournalError(
                f"cannot append a record: {exc}", path=self._path, offset=self._size
            ) from exc
        self._size += len(data)

    def compact(self, snapshot: dict[str, Any]) -> None:
        """Atomically replace the file by one snapshot entry.

        The new file is written beside the journal, fsync-ed, renamed over it,
        and then the directory is fsync-ed, so a crash at any moment leaves
        either the old journal or the new one. A failure before the rename
        raises :class:`JournalError` and leaves the old journal in use; a
        failure to fsync the directory after it makes the journal refuse
        further appends.
        """
        self._writable()
        data = _encode_snapshot(snapshot)
        temp = _temp_path(self._path)
        try:
            new_fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise JournalError(f"cannot compact: {exc}", path=self._path) from exc
        try:
            _write_all(new_fd, data, 0)
            os.fsync(new_fd)
            temp.replace(self._path)
        except OSError as exc:
            os.close(new_fd)
            with contextlib.suppress(OSError):
                temp.unlink()
            raise JournalError(
                f"cannot compact, the journal is unchanged: {exc}", path=self._path
            ) from exc
        # The descriptor opened on the temporary file now refers to the
        # journal, so appends continue in the new file.
        old_fd, self._fd, self._size = self._fd, new_fd, len(data)
        if old_fd is not None:
            os.close(old_fd)
        try:
            _fsync_directory(self._path.parent)
        except OSError as exc:
            # Until the rename is on the disk, a power failure could bring the
            # old file back. That is a consistent state only as long as no
            # record was appended to the new file, so appends stop here.
            self._broken = f"compaction could not make the new file durable ({exc})"
            raise JournalError(
                f"cannot compact: fsync of the directory failed: {exc}", path=self._path
            ) from exc

    @property
    def size(self) -> int:
        """The size of the file in bytes, for deciding when to compact."""
        return self._size

    def close(self) -> None:
        """Close the file and release the lock; closing twice is harmless."""
        fd, self._fd = self._fd, None
        lock_fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)
        # The lock goes last, so nobody else opens the file while it is still
        # open here.
        if lock_fd is not None:
            os.close(lock_fd)

    def _writable(self) -> int:
        if self._fd is None:
            raise JournalError("the journal is closed", path=self._path)
        if self._broken is not None:
            raise JournalError(
                f"the journal refuses appends because {self._broken}; reopen it", path=self._path
            )
        return self._fd


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.~lock~")


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def _lock(path: Path) -> int:
    """Take the journal's exclusive lock and return the descriptor that holds it."""
    lock_path = _lock_path(path)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise JournalError(f"cannot create the lock file {lock_path}: {exc}", path=path) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if isinstance(exc, BlockingIOError):
            raise JournalError(
                f"the journal is open elsewhere (lock file {lock_path} is locked)", path=path
            ) from exc
        raise JournalError(f"cannot lock {lock_path}: {exc}", path=path) from exc
    return fd


def _open_locked(
    path: Path, initial: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]], int, int]:
    """Open, check and repair the journal under its lock -> (snapshot, records, fd, size)."""
    try:
        # A temporary file left over by a compaction that a crash interrupted
        # is garbage: the rename had not happened, so the journal is the old
        # file. Only the lock holder writes it, so removing it here is safe.
        with contextlib.suppress(FileNotFoundError):
            _temp_path(path).unlink()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            _create(path, _encode_snapshot(initial))
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise JournalError(f"cannot open: {exc}", path=path) from exc
    try:
        data = _read_all(fd)
        snapshot, records, end = _parse(path, data)
        if end < len(data):
            logger.warning(
                "%s: discarding %d bytes of an unfinished entry at offset %d",
                path,
                len(data) - end,
                end,
            )
            # The tail is cut now rather than overwritten by the next append,
            # so the file on the disk is valid again even if no append follows.
            os.ftruncate(fd, end)
            os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        raise JournalError(f"cannot read or repair: {exc}", path=path) from exc
    except BaseException:
        os.close(fd)
        raise
    return snapshot, records, fd, end


def _create(path: Path, data: bytes) -> None:
    """Write a new journal file whole, so that it never exists half-written."""
    temp = _temp_path(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        _write_all(fd, data, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    temp.replace(path)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename or a new name in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of `data` at `offset`; a regular file may take it in several writes."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _encode(value: dict[str, Any]) -> bytes:
    """One framed entry; raises TypeError or ValueError for a value that is not JSON."""
    # ASCII output keeps every byte of the text below 0x80 and escapes control
    # characters, so the text holds no newline byte (which is what lets a
    # torn tail be told from damage) and lone surrogates still round-trip.
    # NaN and infinities are not JSON, so they are refused rather than
    # written in a form other JSON readers reject.
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    body = text.encode("ascii")
    digest = hashlib.sha256(body).hexdigest().encode("ascii")
    return b"%s %d %s\n%s\n" % (_MAGIC, len(body), digest, body)


def _encode_snapshot(snapshot: dict[str, Any]) -> bytes:
    return _encode({"format": _FORMAT_NAME, "version": FORMAT_VERSION, "snapshot": snapshot})


def _frame(data: bytes, offset: int) -> tuple[bytes, int]:
    """The JSON text of the entry at `offset` and the offset after it; raises _BadEntryError."""
    newline = data.find(b"\n", offset, offset + _MAX_HEADER)
    if newline < 0:
        raise _BadEntryError("no complete entry header")
    header = _HEADER.fullmatch(data, offset, newline + 1)
    if header is None:
        raise _BadEntryError("malformed entry header")
    start = newline + 1
    end = start + int(header[1])
    if end >= len(data):
        raise _BadEntryError(
            f"entry of {int(header[1])} bytes is cut short by the end of the file"
        )
    if data[end] != _NEWLINE:
        raise _BadEntryError("entry text is not followed by a newline")
    text = data[start:end]
    if hashlib.sha256(text).hexdigest().encode("ascii") != header[2]:
        raise _BadEntryError("checksum mismatch")
    return text, end + 1


def _is_torn_tail(data: bytes, offset: int) -> bool:
    """Whether the bad entry at `offset` can be the one entry a crash interrupted.

    It can when the bytes from `offset` to the end of the file hold at most
    one entry: a header line not yet finished, or a well-formed header
    followed by no more bytes than it announces, with no newline inside them
    (a complete entry after a damaged one always shows one, because the JSON
    text holds none). Such bytes cannot contain a complete, acknowledged
    record, so discarding them loses nothing that was acknowledged.
    """
    newline = data.find(b"\n", offset)
    if newline < 0:
        return True
    header = _HEADER.fullmatch(data, offset, newline + 1)
    if header is None:
        return False
    start = newline + 1
    length = int(header[1])
    if len(data) - start > length + 1:
        return False
    return data.find(b"\n", start) in (-1, start + length)


def _decode(path: Path, offset: int, text: bytes) -> dict[str, Any]:
    # The checksum was right, so text that is not a JSON object was written
    # that way; it is an error, not a torn write.
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise JournalError(f"entry is not valid JSON: {exc}", path=path, offset=offset) from exc
    if not isinstance(value, dict):
        raise JournalError("entry is not a JSON object", path=path, offset=offset)
    return value


def _parse(path: Path, data: bytes) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """-> (snapshot, records, offset where the complete entries end)."""
    if not data:
        raise JournalError("empty file, not a journal", path=path, offset=0)
    try:
        text, offset = _frame(data, 0)
    except _BadEntryError as bad:
        # The snapshot is only ever written whole (see _create and compact),
        # so a bad one is damage, never a crash in the middle of a write.
        raise JournalError(f"bad snapshot entry: {bad}", path=path, offset=0) from None
    first = _decode(path, 0, text)
    if first.get("format") != _FORMAT_NAME:
        raise JournalError("the first entry is not a pvsdb journal snapshot", path=path, offset=0)
    if first.get("version") != FORMAT_VERSION:
        raise JournalError(
            f"unsupported format version {first.get('version')!r}"
            f" (this code reads version {FORMAT_VERSION})",
            path=path,
            offset=0,
        )
    snapshot = first.get("snapshot")
    if not isinstance(snapshot, dict):
        raise JournalError("the snapshot is not a JSON object", path=path, offset=0)
    records = []
    while offset < len(data):
        try:
            text, end = _frame(data, offset)
        except _BadEntryError as bad:
            if _is_torn_tail(data, offset):
                break
            raise JournalError(
                f"{bad}, and it is not an unfinished last entry", path=path, offset=offset
            ) from None
        records.append(_decode(path, offset, text))
        offset = end
    return snapshot, records, offset
