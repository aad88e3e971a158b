"""Open vSwitch 3.1 and pvs-vswitchd side by side, with the same two bridges.

The topology and the ``Switches`` helper are those of ``test_ovs_ofctl.py``
(br0 with p1, p2 and patch0; br1 with p3 and patch1). This adds what the
newer differential tests need: the same ``ovs-appctl`` command to both
daemons (the real ovs-appctl talks to pvs-vswitchd's socket too), with the
program names and what cannot match masked.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from typing import TYPE_CHECKING

from tests.daemon import running_daemon
from tests.interop.ovs_sandbox import started_sandbox
from tests.interop.test_ovs_ofctl import Switches
from tests.scenario.ofctl_helpers import build_topology, port

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pytest


@contextlib.contextmanager
def switch_pair(factory: pytest.TempPathFactory) -> Iterator[Switches]:
    """Both switches with the same bridges and ports; stopped afterwards."""
    with started_sandbox() as sandbox:
        sandbox.vsctl(
            *("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy"),
            *("--", "add-br", "br1", "--", "set", "bridge", "br1", "datapath_type=dummy"),
            *port("br0", "p1", 1),
            *port("br0", "p2", 2),
            *port("br1", "p3", 3),
            *port("br0", "patch0", 10, "type=patch", "options:peer=patch1"),
            *port("br1", "patch1", 11, "type=patch", "options:peer=patch0"),
        )
        with running_daemon(factory.mktemp("pvs")) as rundir:
            build_topology(rundir)
            yield Switches(sandbox, rundir, factory.mktemp("files"))


def appctl(switches: Switches, which: str, *args: str) -> subprocess.CompletedProcess[str]:
    """ovs-appctl to Open vSwitch (``which`` "ovs") or to pvs-vswitchd ("pvs")."""
    if which == "ovs":
        return switches.ovs.appctl(*args, check=False)
    socket = str(switches.rundir / "pvs-vswitchd.ctl")
    return subprocess.run(
        ["ovs-appctl", "--timeout=20", "-t", socket, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


#: What differs by design in any reply: the daemon's name (ovs-appctl names
#: pvs-vswitchd by its socket's path), and how long ago a flow was used.
_ALWAYS = [
    (re.compile(r"(?m)^ovs-appctl: .*: server returned an error$"), "server returned an error"),
    (re.compile(r"[op]vs-vswitchd"), "vswitchd"),
    (re.compile(r"used:(never|\d+\.\d+s)"), "used:?"),
]


def ask_both(
    switches: Switches,
    *args: str,
    masks: list[tuple[re.Pattern[str], str]] | None = None,
    ordered: bool = False,
) -> tuple[int, str, str]:
    """Run one ovs-appctl command on both daemons; they must agree. Returns the reply.

    Unless ``ordered``, lines are compared as sets: Open vSwitch lists flows
    in its hash tables' order. ``masks`` hides more of what cannot match.
    """
    replies = []
    for which in ("ovs", "pvs"):
        done = appctl(switches, which, *args)
        texts = []
        for output in (done.stdout, done.stderr):
            text = output
            for pattern, replacement in [*_ALWAYS, *(masks or [])]:
                text = pattern.sub(replacement, text)
            lines = text.splitlines()
            texts.append("\n".join(lines if ordered else sorted(lines)))
        replies.append((done.returncode, texts[0], texts[1]))
    assert replies[0] == replies[1], f"{args}\novs: {replies[0]}\npvs: {replies[1]}"
    return replies[1]
