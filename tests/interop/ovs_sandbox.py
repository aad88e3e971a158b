"""A private Open vSwitch, started the way Open vSwitch's own tests start it.

``tests/ofproto-macros.at`` runs ``ovsdb-server`` and ``ovs-vswitchd
--enable-dummy --disable-system`` in a scratch directory and builds bridges
with ``datapath_type=dummy`` and dummy ports. We do the same, under a
directory named ``pvs-ovs-*`` in the temporary directory, so differential
tests can ask the real Open vSwitch what it prints or sends and compare. The
daemons are stopped by the pids they wrote, and nothing touches the system's
own Open vSwitch (never started through systemd, no kernel module).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
PROGRAMS = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl", "ovs-ofctl")


def missing_programs() -> list[str]:
    """Open vSwitch programs this machine lacks (empty when all are there)."""
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if not SCHEMA.exists():
        missing.append(str(SCHEMA))
    return missing


class OvsSandbox:
    """ovsdb-server and ovs-vswitchd with dummy datapaths, private to one test session."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pvs-ovs-"))
        self.env = {
            **os.environ,
            "OVS_RUNDIR": str(self.dir),
            "OVS_LOGDIR": str(self.dir),
            "OVS_DBDIR": str(self.dir),
            "OVS_SYSCONFDIR": str(self.dir),
            "OVS_PKGDATADIR": str(self.dir),
        }
        self.db_sock = self.dir / "db.sock"

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one Open vSwitch program against this sandbox (bounded to 30 s)."""
        return subprocess.run(
            argv,
            env=self.env,
            cwd=self.dir,
            capture_output=True,
            text=True,
            check=check,
            timeout=30,
        )

    def start(self) -> None:
        """Start both daemons and wait until they answer."""
        self.run("ovsdb-tool", "create", str(self.dir / "conf.db"), str(SCHEMA))
        self.run(
            "ovsdb-server",
            "--detach",
            "--no-chdir",
            "--pidfile",
            "--log-file",
            f"--remote=punix:{self.db_sock}",
            str(self.dir / "conf.db"),
        )
        self.vsctl("--no-wait", "init")
        self.run(
            "ovs-vswitchd",
            "--enable-dummy",
            "--disable-system",
            "--disable-system-route",
            "--detach",
            "--no-chdir",
            "--pidfile",
            "--log-file",
            f"unix:{self.db_sock}",
        )

    def vsctl(self, *args: str) -> str:
        """ovs-vsctl against the sandbox's database."""
        return self.run("ovs-vsctl", "--timeout=20", f"--db=unix:{self.db_sock}", *args).stdout

    def appctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """ovs-appctl to the sandbox's ovs-vswitchd."""
        return self.run("ovs-appctl", "--timeout=20", *args, check=check)

    def ofctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """ovs-ofctl, offline or against a sandbox bridge."""
        return self.run("ovs-ofctl", *args, check=check)

    def add_dummy_bridge(self, bridge: str, ports: int) -> None:
        """A ``datapath_type=dummy`` bridge with ports p1..pN as ofports 1..N."""
        args = [
            "add-br",
            bridge,
            "--",
            "set",
            "bridge",
            bridge,
            "datapath-type=dummy",
            "fail-mode=secure",
        ]
        for i in range(1, ports + 1):
            args += [
                "--",
                "add-port",
                bridge,
                f"p{i}",
                "--",
                "set",
                "Interface",
                f"p{i}",
                "type=dummy",
                f"ofport_request={i}",
            ]
        self.vsctl(*args)

    def stop(self) -> None:
        """Stop the daemons this sandbox started (by their pids) and remove its directory."""
        for name in ("ovs-vswitchd", "ovsdb-server"):
            pidfile = self.dir / f"{name}.pid"
            with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
                pid = int(pidfile.read_text().strip())
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    os.kill(pid, 0)
                    time.sleep(0.05)
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def require_ovs() -> None:
    """Skip the test when Open vSwitch's programs are not installed."""
    missing = missing_programs()
    if missing:
        pytest.skip(
            f"Open vSwitch is not installed (missing {', '.join(missing)}); "
            "'./run test' installs it"
        )


@contextlib.contextmanager
def started_sandbox() -> Iterator[OvsSandbox]:
    """A started private Open vSwitch, stopped afterwards; the test skips when OVS is missing."""
    require_ovs()
    sandbox = OvsSandbox()
    try:
        sandbox.start()
        yield sandbox
    finally:
        sandbox.stop()
