"""The journal under real crashes: a writer process killed with SIGKILL, again and again.

A child process appends numbered records and prints each number only after
``append()`` returned, so a printed number is an acknowledged record. Every
few records it compacts, announcing the start and the end. The test kills it
at random moments (any time after it starts, a moment after an
acknowledgement or the start of an append, during a compaction, or as soon as
the file grows, which is most often inside the write itself), reopens the journal and checks that
the file opens, that every acknowledged record is there, in order, with no
gap and no duplicate, and that at most the one record that was being written
is there without having been acknowledged. The next child continues the same
file, so each run also starts from whatever the previous kill left.

It needs no root: only a file under the test's temporary directory.
"""

from __future__ import annotations

import collections
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pyvswitch
from pyvswitch.ovsdb.journal import Journal

if TYPE_CHECKING:
    from collections.abc import Callable

KILLS = 200
TIME_BUDGET = 60.0  # seconds for all the kills together
MIN_KILLS = 50  # fewer within the budget means the machine is too slow to tell anything
COMPACT_EVERY = 5

# Records are up to 256 KiB and snapshots up to 1 MiB, so that the kernel
# copies them in many pages and a kill can land in the middle of a write.
CHILD = r"""
import random
import sys
from pathlib import Path

from pyvswitch.ovsdb.journal import Journal

path, seed, compact_every = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
journal, snapshot, records = Journal.open(path, {"upto": -1})
last = records[-1]["n"] if records else snapshot["upto"]
print("opened", last, flush=True)
n = last + 1
while True:
    print("appending", n, flush=True)
    journal.append({"n": n, "pad": "r" * rng.randrange(256 * 1024)})
    print(n, flush=True)
    if n % compact_every == 0:
        print("compacting", n, flush=True)
        journal.compact({"upto": n, "pad": "s" * rng.randrange(1024 * 1024)})
        print("compacted", n, flush=True)
    n += 1
"""


class ChildOutput:
    """The lines a child printed, read without blocking past a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self._fd = proc.stdout.fileno()
        self._partial = b""
        self.lines: list[str] = []
        self.eof = False

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self._fd], [], [], max(timeout, 0.0))
        if not ready:
            return
        chunk = os.read(self._fd, 65536)
        if not chunk:
            self.eof = True
            return
        *complete, self._partial = (self._partial + chunk).split(b"\n")
        self.lines.extend(line.decode() for line in complete)

    def wait_for(self, wanted: Callable[[str], bool], count: int, timeout: float) -> bool:
        """Read until `count` lines are `wanted`; False at the end of the output or on timeout."""
        deadline = time.monotonic() + timeout
        while sum(map(wanted, self.lines)) < count:
            if self.eof or time.monotonic() >= deadline:
                return False
            self._read(deadline - time.monotonic())
        return True

    def read_to_end(self) -> None:
        """After the child died: everything it printed is still in the pipe."""
        while not self.eof:
            self._read(10.0)


def kill_when_the_file_grows(proc: subprocess.Popen[bytes], path: Path, timeout: float) -> bool:
    """Kill the child as soon as its journal grows: while it is inside a write, most often.

    The kernel extends the file page by page as it copies an entry in, so a
    size that changed says a write is under way. Random moments rarely fall
    inside the write itself, which takes a few percent of an append; this is
    how torn entries are made on purpose. False if the file never grew.
    """
    size = path.stat().st_size
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.stat().st_size != size:
            os.kill(proc.pid, signal.SIGKILL)
            return True
    return False


def acknowledged(lines: list[str]) -> list[int]:
    return [int(line) for line in lines if line.isdigit()]


def check_journal(path: Path) -> tuple[int, int]:
    """Open the journal as the database would -> (last record number, bytes cut off)."""
    size_on_disk = path.stat().st_size
    journal, snapshot, records = Journal.open(path, {"upto": -1})
    try:
        first = snapshot["upto"] + 1
        numbers = [record["n"] for record in records]
        assert numbers == list(range(first, first + len(numbers))), (
            f"records after snapshot {snapshot['upto']} are not in order without gaps: {numbers}"
        )
        return (numbers[-1] if numbers else snapshot["upto"]), size_on_disk - journal.size
    finally:
        journal.close()


def test_sigkill_never_loses_an_acknowledged_record(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    path = tmp_path / "conf.db"
    temp = tmp_path / ".conf.db.tmp"
    # The child imports this very source tree, whatever is installed.
    src = str(Path(pyvswitch.__file__).resolve().parent.parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
    }
    stats: collections.Counter[str] = collections.Counter()
    last = -1  # the highest record number known to be in the journal
    deadline = time.monotonic() + TIME_BUDGET
    kills = 0
    while kills < KILLS and time.monotonic() < deadline:
        mode = rng.choice(["anytime", "after-ack", "appending", "compacting", "file-grows"])
        context = f"seed {seed}, kill {kills}, mode {mode}"
        argv = [
            sys.executable,
            "-c",
            CHILD,
            str(path),
            str(rng.randrange(2**32)),
            str(COMPACT_EVERY),
        ]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        output = ChildOutput(proc)
        try:
            if mode == "anytime":
                # From the start of the interpreter on: this also kills the
                # child while it opens the journal and cuts off a torn tail.
                time.sleep(rng.uniform(0.0, 0.1))
            elif mode == "after-ack":
                if output.wait_for(str.isdigit, rng.randint(1, 12), timeout=10.0):
                    time.sleep(rng.uniform(0.0, 0.003))
            elif mode == "appending":
                appending = rng.randint(1, 12)
                if output.wait_for(lambda line: line.startswith("appending"), appending, 10.0):
                    time.sleep(rng.uniform(0.0, 0.001))
            elif mode == "compacting":
                if output.wait_for(lambda line: line.startswith("compacting"), 1, 10.0):
                    time.sleep(rng.uniform(0.0, 0.004))
            elif output.wait_for(str.isdigit, rng.randint(1, 12), timeout=10.0):
                kill_when_the_file_grows(proc, path, timeout=2.0)
            os.kill(proc.pid, signal.SIGKILL)
            output.read_to_end()
        finally:
            # The child is ours; kill it by its pid if anything above failed.
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            stderr = proc.stderr.read().decode() if proc.stderr is not None else ""
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        assert proc.returncode == -signal.SIGKILL, (
            f"{context}: the child died by itself:\n{stderr}"
        )
        kills += 1

        acks = acknowledged(output.lines)
        opened = [int(line.split()[1]) for line in output.lines if line.startswith("opened")]
        if opened:
            assert opened == [last], f"{context}: the child opened at {opened}, expected {last}"
            assert acks == list(range(last + 1, last + 1 + len(acks))), f"{context}: {acks}"
        highest_ack = acks[-1] if acks else last
        temp_was_left = temp.exists()

        if not path.exists():
            # Killed before the journal was ever created (the interpreter can
            # take longer to start than the kill waited). Creation is atomic,
            # so there is no file at all, and nothing can have been
            # acknowledged yet.
            assert last == -1, f"{context}: the journal vanished after record {last}"
            assert not acks, f"{context}: records {acks} acknowledged but no journal"
            stats["kills before the journal existed"] += 1
            continue
        now, cut = check_journal(path)
        assert highest_ack <= now <= highest_ack + 1, (
            f"{context}: the journal ends at record {now}, "
            f"but record {highest_ack} was acknowledged"
        )
        assert not temp.exists(), f"{context}: open left the compaction's temporary file"
        last = now

        stats["acknowledged records"] += len(acks)
        stats["kills before the journal was open"] += not opened
        stats["unacknowledged record kept"] += now > highest_ack
        stats["torn tail cut off"] += cut > 0
        if output.lines and output.lines[-1].startswith("compacting"):
            stats["kills during compaction"] += 1
            stats["... with the temporary file left"] += temp_was_left
    report = ", ".join(f"{name}: {count}" for name, count in stats.items())
    took = TIME_BUDGET - (deadline - time.monotonic())
    print(f"\n{kills} kills in {took:.1f} s (seed {seed}); {report}")
    assert kills >= MIN_KILLS, f"only {kills} kills within {TIME_BUDGET} s"
    assert stats["kills during compaction"] > 0
