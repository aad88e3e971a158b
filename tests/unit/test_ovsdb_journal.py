"""The configuration database's journal: framing, recovery from crashes, refusal of damage.

The files are checked with a reader written here from the documented format,
not with the journal's own parser, and damaged by hand: every byte of the last
entry cut away in turn (what a crash leaves), every byte before it changed
(what only damage can do). What a real crash leaves is tested in
tests/system/test_ovsdb_journal_crash.py with SIGKILL.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvswitch.ovsdb import journal as journal_module
from pyvswitch.ovsdb.journal import FORMAT_VERSION, Journal, JournalError

if TYPE_CHECKING:
    from collections.abc import Callable

HEADER = re.compile(rb"PVSDB JSON ([0-9]+) ([0-9a-f]{64})\n")

SNAPSHOT = {"tables": {"Bridge": {"br0": {"ports": ["p1", "p2"]}}}, "next": 3}
R1 = {"op": "insert", "table": "Port", "row": {"name": "p1", "tag": 10}}
R2 = {"op": "update", "table": "Port", "row": {"name": "p1", "tag": None, "text": "é ✓ \n"}}
R3 = {"op": "delete", "table": "Port", "name": "p1"}


def read_entries(data: bytes) -> list[tuple[int, Any]]:
    """(offset, JSON value) of each entry, read by the documented format alone."""
    entries = []
    pos = 0
    while pos < len(data):
        header = HEADER.match(data, pos)
        assert header is not None, f"no header at offset {pos}"
        start = header.end()
        end = start + int(header[1])
        text = data[start:end]
        assert hashlib.sha256(text).hexdigest() == header[2].decode()
        assert data[end : end + 1] == b"\n"
        assert b"\n" not in text
        entries.append((pos, json.loads(text)))
        pos = end + 1
    return entries


def frame(text: bytes) -> bytes:
    """One entry around `text`, framed by hand."""
    digest = hashlib.sha256(text).hexdigest().encode()
    return b"PVSDB JSON %d %s\n%s\n" % (len(text), digest, text)


def snapshot_entry(snapshot: Any, version: Any = FORMAT_VERSION) -> bytes:
    wrapper = {"format": "pvsdb-journal", "version": version, "snapshot": snapshot}
    return frame(json.dumps(wrapper).encode())


def write_journal(path: Path, snapshot: dict[str, Any], *records: dict[str, Any]) -> bytes:
    """Make a journal with the journal itself and return its bytes."""
    journal, _, _ = Journal.open(path, snapshot)
    try:
        for record in records:
            journal.append(record)
    finally:
        journal.close()
    return path.read_bytes()


def reopen(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    journal, snapshot, records = Journal.open(path, {"unused": True})
    journal.close()
    return snapshot, records


def test_open_of_a_missing_file_creates_it_with_the_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "conf.db"
    journal, snapshot, records = Journal.open(path, SNAPSHOT)
    try:
        assert (snapshot, records) == (SNAPSHOT, [])
        assert journal.size == path.stat().st_size
    finally:
        journal.close()
    entries = read_entries(path.read_bytes())
    assert entries == [
        (0, {"format": "pvsdb-journal", "version": FORMAT_VERSION, "snapshot": SNAPSHOT})
    ]
    assert reopen(path) == (SNAPSHOT, [])


def test_created_snapshot_is_returned_as_it_reads_back(tmp_path: Path) -> None:
    # What open returns for a new file must equal what every later open
    # returns, so the caller never holds a state the file does not have.
    _, snapshot, _ = Journal.open(tmp_path / "db", {"t": (1, 2)})
    assert snapshot == {"t": [1, 2]}


def test_open_in_a_missing_directory_raises_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "conf.db"
    with pytest.raises(JournalError, match=re.escape(str(path))):
        Journal.open(path, SNAPSHOT)


def test_entries_are_framed_as_documented(tmp_path: Path) -> None:
    path = tmp_path / "conf.db"
    data = write_journal(path, SNAPSHOT, R1, R2)
    entries = read_entries(data)
    assert [value for _, value in entries] == [
        {"format": "pvsdb-journal", "version": 1, "snapshot": SNAPSHOT},
        R1,
        R2,
    ]
    # The text is one line of ASCII whatever the record holds: that is what
    # lets a reader tell an unfinished entry from damage.
    assert data.isascii()
    assert data.count(b"\n") == 2 * len(entries)
    assert reopen(path) == (SNAPSHOT, [R1, R2])


def test_size_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "conf.db"
    journal, _, _ = Journal.open(path, SNAPSHOT)
    try:
        sizes = [journal.size]
        for record in (R1, R2, R3):
            journal.append(record)
            assert journal.size == path.stat().st_size
            sizes.append(journal.size)
        assert sizes == sorted(sizes)
        assert len(set(sizes)) == len(sizes)
    finally:
        journal.close()


def test_torn_last_entry_is_discarded_at_every_cut(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "conf.db"
    long_record = {**R2, "padding": "x" * 300}
    whole = write_journal(path, SNAPSHOT, R1, long_record)
    last_start = read_entries(whole)[-1][0]
    for cut in range(last_start, len(whole)):
        path.write_bytes(whole[:cut])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="pyvswitch.ovsdb.journal"):
            journal, snapshot, records = Journal.open(path, {"unused": True})
        try:
            assert (snapshot, records) == (SNAPSHOT, [R1]), f"cut at {cut}"
            # The unfinished entry is cut off the file before anything new is
            # appended, so the next entry follows a complete one.
            assert path.stat().st_size == last_start == journal.size, f"cut at {cut}"
            if cut > last_start:
                assert f"at offset {last_start}" in caplog.text
            journal.append(R3)
        finally:
            journal.close()
        assert reopen(path) == (SNAPSHOT, [R1, R3]), f"cut at {cut}"
    path.write_bytes(whole)
    assert reopen(path) == (SNAPSHOT, [R1, long_record])


@pytest.mark.parametrize(
    "damage",
    [
        # A power failure can leave the file longer than the data that
        # reached the disk, with zeros where the last entry should be.
        pytest.param(lambda entry: bytes(len(entry)), id="last-entry-zeroed"),
        pytest.param(lambda entry: entry[:40] + bytes(len(entry) - 40), id="body-zeroed"),
        pytest.param(lambda entry: entry + bytes(8192), id="zeros-after-it"),
        pytest.param(lambda entry: entry[:-2] + b"?\n", id="complete-but-bad-checksum"),
    ],
)
def test_what_a_power_failure_leaves_after_the_last_entry_is_discarded(
    tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    path = tmp_path / "conf.db"
    whole = write_journal(path, SNAPSHOT, R1, R2)
    last_start = read_entries(whole)[-1][0]
    tail = damage(whole[last_start:])
    path.write_bytes(whole[:last_start] + tail)
    if tail.startswith(whole[last_start:]):
        assert reopen(path) == (SNAPSHOT, [R1, R2])
    else:
        assert reopen(path) == (SNAPSHOT, [R1])
    assert path.read_bytes() in (whole, whole[:last_start])


def test_a_cut_inside_the_snapshot_is_an_error(tmp_path: Path) -> None:
    # The snapshot is written whole and renamed into place, so a short one is
    # damage, not a crash, and must not be replaced by `initial`.
    path = tmp_path / "conf.db"
    whole = write_journal(path, SNAPSHOT)
    for cut in range(len(whole)):
        path.write_bytes(whole[:cut])
        with pytest.raises(JournalError, match=f"{re.escape(str(path))}: offset 0: "):
            Journal.open(path, {"unused": True})
        assert path.read_bytes() == whole[:cut]


def damaged_copies(data: bytes, start: int, end: int) -> list[tuple[str, bytes]]:
    """Every one-byte change, newline, deletion and insertion between start and end."""
    copies = []
    for pos in range(start, end):
        copies.append((f"flip {pos}", data[:pos] + bytes([data[pos] ^ 1]) + data[pos + 1 :]))
        if data[pos] != 0x0A:
            copies.append((f"newline at {pos}", data[:pos] + b"\n" + data[pos + 1 :]))
        copies.append((f"delete {pos}", data[:pos] + data[pos + 1 :]))
        copies.append((f"insert at {pos}", data[:pos] + b"x" + data[pos:]))
    return copies


def test_damage_before_the_last_entry_raises_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "conf.db"
    whole = write_journal(path, SNAPSHOT, R1, R2)
    offsets = [offset for offset, _ in read_entries(whole)]
    bounds = [*offsets[1:], len(whole)]
    checked = 0
    for entry_start, entry_end in zip(offsets[:-1], bounds[:-1], strict=True):
        for what, damaged in damaged_copies(whole, entry_start, entry_end):
            path.write_bytes(damaged)
            with pytest.raises(JournalError) as caught:
                Journal.open(path, {"unused": True})
            message = str(caught.value)
            assert message.startswith(f"{path}: offset {entry_start}: "), what
            assert caught.value.offset == entry_start, what
            # Nothing is cut from a file that is refused: the acknowledged
            # records after the damage are still there to be rescued.
            assert path.read_bytes() == damaged, what
            checked += 1
    assert checked > 500
    # A refused open releases the lock, so the repaired file opens.
    path.write_bytes(whole)
    assert reopen(path) == (SNAPSHOT, [R1, R2])


def test_damage_in_the_last_entry_never_returns_a_changed_record(tmp_path: Path) -> None:
    path = tmp_path / "conf.db"
    whole = write_journal(path, SNAPSHOT, R1, R2)
    last_start = read_entries(whole)[-1][0]
    outcomes = set()
    for what, damaged in damaged_copies(whole, last_start, len(whole)):
        path.write_bytes(damaged)
        try:
            snapshot, records = reopen(path)
        except JournalError:
            outcomes.add("refused")
            assert path.read_bytes() == damaged, what
        else:
            outcomes.add("discarded")
            assert (snapshot, records) == (SNAPSHOT, [R1]), what
    assert outcomes == {"refused", "discarded"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b'{"Bridge": {}}\n', "bad snapshot entry: malformed entry header"),
        (frame(b'{"format": "other", "snapshot": {}}'), "not a pvsdb journal snapshot"),
        (snapshot_entry({}, version=2), "unsupported format version 2"),
        (snapshot_entry([1, 2]), "the snapshot is not a JSON object"),
        (frame(b"[1, 2]"), "entry is not a JSON object"),
        (snapshot_entry({}) + frame(b"[1, 2]"), "entry is not a JSON object"),
        (snapshot_entry({}) + frame(b"{nope}"), "entry is not valid JSON"),
        (snapshot_entry({}) + frame(b'{"a": 1}').replace(b" 8 ", b" 08 "), "malformed"),
    ],
)
def test_files_that_are_not_journals_are_refused(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "conf.db"
    path.write_bytes(content)
    with pytest.raises(JournalError, match=re.escape(reason)):
        Journal.open(path, SNAPSHOT)
    assert path.read_bytes() == content


def test_compact_replaces_the_file_with_one_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "conf.db"
    journal, _, _ = Journal.open(path, SNAPSHOT)
    try:
        for record in (R1, R2, R3):
            journal.append(record)
        before = path.stat()
        compacted = {"tables": {}, "next": 4}
        journal.compact(compacted)
        after = path.stat()
        # A new file was renamed into place, not the old one rewritten.
        assert after.st_ino != before.st_ino
        assert after.st_size == journal.size < before.st_size
        assert [value for _, value in read_entries(path.read_bytes())] == [
            {"format": "pvsdb-journal", "version": 1, "snapshot": compacted}
        ]
        # Appends after compaction go to the new file.
        journal.append(R1)
        assert journal.size == path.stat().st_size
    finally:
        journal.close()
    assert reopen(path) == (compacted, [R1])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".conf.db.~lock~", "conf.db"]


def test_failed_compaction_keeps_the_old_journal_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "conf.db"
    journal, _, _ = Journal.open(path, SNAPSHOT)
    try:
        journal.append(R1)
        before = path.read_bytes()

        def refuse(self: Path, target: Path) -> Path:
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        with monkeypatch.context() as patch:
            patch.setattr(Path, "replace", refuse)
            with pytest.raises(JournalError, match="the journal is unchanged"):
                journal.compact({"compacted": True})
        assert path.read_bytes() == before
        assert not (tmp_path / ".conf.db.tmp").exists()
        journal.append(R2)
    finally:
        journal.close()
    assert reopen(path) == (SNAPSHOT, [R1, R2])


def test_a_compaction_cut_short_by_a_crash_leaves_the_old_journal(tmp_path: Path) -> None:
    # A crash before the rename leaves the temporary file beside the journal;
    # the journal is still the old file, and the next open removes the rest.
    path = tmp_path / "conf.db"
    write_journal(path, SNAPSHOT, R1)
    temp = tmp_path / ".conf.db.tmp"
    temp.write_bytes(snapshot_entry({"half": "written"})[:30])
    assert reopen(path) == (SNAPSHOT, [R1])
    assert not temp.exists()


def test_a_second_open_is_refused_until_the_first_is_closed(tmp_path: Path) -> None:
    path = tmp_path / "conf.db"
    journal, _, _ = Journal.open(path, SNAPSHOT)
    try:
        with pytest.raises(JournalError, match="open elsewhere"):
            Journal.open(path, SNAPSHOT)
        # Compaction replaces the file but not the lock, which still holds.
        journal.compact(SNAPSHOT)
        with pytest.raises(JournalError, match="open elsewhere"):
            Journal.open(path, SNAPSHOT)
    finally:
        journal.close()
    assert reopen(path) == (SNAPSHOT, [])


def test_a_closed_journal_refuses_work_and_closes_twice(tmp_path: Path) -> None:
    journal, _, _ = Journal.open(tmp_path / "conf.db", SNAPSHOT)
    journal.close()
    journal.close()
    with pytest.raises(JournalError, match="closed"):
        journal.append(R1)
    with pytest.raises(JournalError, match="closed"):
        journal.compact(SNAPSHOT)


@pytest.mark.parametrize(
    ("record", "error"),
    [
        ({"x": float("nan")}, ValueError),
        ({"x": float("inf")}, ValueError),
        ({"x": object()}, TypeError),
        ({"x": b"bytes"}, TypeError),
    ],
)
def test_a_record_that_is_not_json_is_refused_before_writing(
    tmp_path: Path, record: dict[str, Any], error: type[Exception]
) -> None:
    path = tmp_path / "conf.db"
    journal, _, _ = Journal.open(path, SNAPSHOT)
    try:
        journal.append(R1)
        before = path.read_bytes()
        with pytest.raises(error):
            journal.append(record)
        with pytest.raises(error):
            journal.compact(record)
        assert path.read_bytes() == before
        journal.append(R2)
    finally:
        journal.close()
    assert reopen(path) == (SNAPSHOT, [R1, R2])


def test_a_failed_write_is_cut_off_and_stops_appends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "conf.db"
    journal, _, _ = Journal.open(path, SNAPSHOT)
    real_pwrite = os.pwrite
    try:
        journal.append(R1)
        before = path.read_bytes()

        def half_then_full_disk(fd: int, data: Any, offset: int) -> int:
            # The first call writes part of the entry, as a disk that fills up
            # does, and the next one fails.
            monkeypatch.setattr(journal_module.os, "pwrite", no_space)
            return real_pwrite(fd, bytes(data)[:20], offset)

        def no_space(fd: int, data: Any, offset: int) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(journal_module.os, "pwrite", half_then_full_disk)
        with pytest.raises(JournalError, match=f"offset {len(before)}: .*No space left"):
            journal.append(R2)
        monkeypatch.setattr(journal_module.os, "pwrite", real_pwrite)
        assert path.read_bytes() == before
        with pytest.raises(JournalError, match="reopen"):
            journal.append(R3)
    finally:
        journal.close()
    assert reopen(path) == (SNAPSHOT, [R1])


def test_a_failed_fsync_stops_appends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "conf.db"
    journal, _, _ = Journal.open(path, SNAPSHOT)
    try:

        def io_error(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

        with monkeypatch.context() as patch:
            patch.setattr(journal_module.os, "fsync", io_error)
            with pytest.raises(JournalError, match="Input/output error"):
                journal.append(R1)
        # After a failed fsync the data may never reach the disk even if a
        # later fsync succeeds, so the journal does not carry on.
        with pytest.raises(JournalError, match="reopen"):
            journal.append(R2)
    finally:
        journal.close()
    assert reopen(path) == (SNAPSHOT, [])


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
JSON_OBJECTS = st.dictionaries(st.text(), JSON_VALUES, max_size=5)
FIXTURE_PER_EXAMPLE = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@FIXTURE_PER_EXAMPLE
@given(snapshot=JSON_OBJECTS, records=st.lists(JSON_OBJECTS, max_size=6))
def test_random_records_round_trip(
    tmp_path: Path, snapshot: dict[str, Any], records: list[dict[str, Any]]
) -> None:
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "conf.db"
    write_journal(path, snapshot, *records)
    assert reopen(path) == (snapshot, records)


@FIXTURE_PER_EXAMPLE
@given(records=st.lists(JSON_OBJECTS, min_size=1, max_size=6), data=st.data())
def test_a_cut_anywhere_after_the_snapshot_keeps_the_complete_entries(
    tmp_path: Path, records: list[dict[str, Any]], data: st.DataObject
) -> None:
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "conf.db"
    whole = write_journal(path, SNAPSHOT, *records)
    offsets = [offset for offset, _ in read_entries(whole)]
    cut = data.draw(st.integers(offsets[1], len(whole)), label="cut")
    path.write_bytes(whole[:cut])
    complete = sum(1 for end in [*offsets[2:], len(whole)] if end <= cut)
    assert reopen(path) == (SNAPSHOT, records[:complete])
