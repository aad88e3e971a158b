"""The capture socket: what pvs-tcpdump talks to, to capture on any port of any bridge.

A client connects to ``capture.sock`` in the run directory (mode 0600, like
the other sockets: what crosses the switch is root's to see) and sends one
JSON line, ``{"port": NAME, "filter": EXPRESSION, "snaplen": N}``. The
daemon finds the port, compiles the filter with libpcap in a worker thread
(a name in the expression may need the resolver, which must not hold up
forwarding), and answers one JSON line: ``{"ok": {...}}`` describing the
capture, or ``{"error": MESSAGE}`` naming what is wrong (an unknown port, or
libpcap's own message for an expression it refuses), after which it closes.

After ``ok`` comes a pcapng stream: a section header, one interface named
after the port, then an Enhanced Packet Block for every frame the bridge
receives on the port (``epb_flags`` inbound) or sends out of it (outbound)
that the filter accepts, cut to the snapshot length. The filter is our BPF
interpreter (:mod:`pyvswitch.packet.bpf`), run on the frame in place before
anything is copied. Frames that carry offload work (a checksum left to the
device, a GSO super-frame) are captured as they are, as tcpdump on a host
sees them before the device does the work.

Where the frames come from:

* device ports (system, internal, tap, dummy): the netdev capture hook,
  which the daemon's forwarding calls for every batch received and sent;
  one listener per device fans the frames out to every capture on it;
* patch ports, which no device backs: translation emits a
  ``userspace(pid=0,pvs_capture(...))`` action at the crossing while someone
  captures there (:mod:`pyvswitch.ofproto.capture_points`), and the
  datapath hands those frames over on cache hits too.

Forwarding never waits for a reader: frames wait in the connection's write
buffer, and once that holds :data:`BUFFER_LIMIT` bytes, accepted frames are
dropped and counted. The client ends a capture by sending ``stop``: the
daemon sends an Interface Statistics Block with the counts and closes. A
client that goes away without a word is detached at once. A capture whose
port goes away, and every capture when the daemon exits, ends with the
statistics block and a comment saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyvswitch.capture.compile import (
    DEFAULT_SNAPLEN,
    FilterError,
    LibpcapMissingError,
    compile_filter,
)
from pyvswitch.capture.pcapng_stream import CaptureStats, interface_statistics
from pyvswitch.ofproto.xlate_tunnel import TUNNEL_TYPES
from pyvswitch.packet.bpf import BpfProgram
from pyvswitch.packet.pcapng import (
    Direction,
    enhanced_packet,
    interface_description,
    section_header,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from pyvswitch.dpif.actions import OdpUserspace
    from pyvswitch.netdev import Netdev
    from pyvswitch.ofproto.ofproto import Ofproto
    from pyvswitch.vswitchd.daemon import Daemon

    #: A device, or a patch port (its ofproto and name), frames are captured from.
    Source = Netdev | tuple[Ofproto, str]

log = logging.getLogger("pyvswitch.capture")

SOCKET_NAME = "capture.sock"
#: Bytes of pcapng a capture may have waiting for its reader before frames
#: are dropped: libpcap's default capture buffer on Linux.
BUFFER_LIMIT = 2 << 20
#: The largest request line (a filter expression and a port name).
MAX_REQUEST = 64 << 10
#: How long a client may take to send its request.
REQUEST_TIMEOUT = 10.0
#: How often captures are checked for ports that went away (seconds).
PORT_CHECK_INTERVAL = 1.0
#: The classic BPF return instruction (``ret #k``): an empty filter keeps
#: every frame whole, without asking libpcap.
_BPF_RET_K = 0x06

_DIRECTIONS = {"rx": Direction.INBOUND, "tx": Direction.OUTBOUND}


class CaptureRequestError(Exception):
    """A capture request is refused; the message names what is wrong."""


def _now_usec() -> int:
    return time.time_ns() // 1000


@dataclass(eq=False)
class Capture:
    """One client's capture on one port, with its filter and counters."""

    capture_id: int
    port: str
    bridge: str
    port_type: str
    expression: str
    snaplen: int
    keep: Callable[[bytes], int]
    #: The client's connection: frames are queued in its write buffer.
    transport: asyncio.WriteTransport
    pid: int | None
    #: Where its frames come from: a device, or (ofproto, patch port name).
    source: Source
    start: int = field(default_factory=_now_usec)
    seen: int = 0
    accepted: int = 0
    dropped: int = 0
    ended: bool = False

    def frames(self, direction: Direction, frames: Sequence[bytes], stamp: int) -> None:
        """Filter a batch seen on the port and queue what passes, unless the reader lags."""
        if self.ended:
            return
        transport = self.transport
        keep = self.keep
        self.seen += len(frames)
        for frame in frames:
            length = keep(frame)
            if not length:
                continue
            self.accepted += 1
            if transport.is_closing() or transport.get_write_buffer_size() > BUFFER_LIMIT:
                self.dropped += 1
                continue
            transport.write(enhanced_packet(0, frame, stamp, min(length, self.snaplen), direction))

    def end(self, comment: str | None = None) -> None:
        """Send the statistics block (with ``comment`` when the switch ends it) and close."""
        if self.ended:
            return
        self.ended = True
        stats = CaptureStats(
            self.seen, self.accepted, self.dropped, self.start, _now_usec(), comment
        )
        if not self.transport.is_closing():
            self.transport.write(interface_statistics(0, stats))
        # The transport sends what it holds before it closes.
        self.transport.close()

    def describe(self) -> str:
        """Two lines of ``capture/show``."""
        pid = "" if self.pid is None else f", pid {self.pid}"
        return (
            f"capture {self.capture_id}: {self.port} ({self.bridge}, {self.port_type}){pid}, "
            f"snaplen {self.snaplen}, filter {json.dumps(self.expression)}\n"
            f"    seen:{self.seen} accepted:{self.accepted} dropped:{self.dropped}\n"
        )


class _Tap:
    """A port's listener: fans each batch out to every capture on the port."""

    def __init__(self) -> None:
        self.captures: list[Capture] = []

    def frames(self, device: str, direction: str, frames: Sequence[bytes]) -> None:  # noqa: ARG002 - the hook's signature
        stamp = _now_usec()
        way = _DIRECTIONS[direction]
        for capture in self.captures:
            capture.frames(way, frames, stamp)


class CaptureServer:
    """Serves ``capture.sock``: attaches captures to ports and ends them."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.captures: dict[int, Capture] = {}
        self._taps: dict[Source, _Tap] = {}
        self._next_id = 1
        self._server: asyncio.base_events.Server | None = None
        self._path: Path | None = None
        self._inode: int | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._checker: asyncio.Task[None] | None = None

    # -- the socket -----------------------------------------------------------------

    async def listen(self, path: Path) -> None:
        """Serve on unix socket ``path``, private (0600) from the moment it exists."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        old_mask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._client, path=str(path), limit=MAX_REQUEST
            )
        finally:
            os.umask(old_mask)
        path.chmod(0o600)
        self._path, self._inode = path, path.stat().st_ino
        self._checker = asyncio.create_task(self._check_ports())

    async def close(self) -> None:
        """End every capture (saying the daemon is exiting), stop listening, remove the socket."""
        for capture in list(self.captures.values()):
            capture.end("pvs-vswitchd is exiting")
            self._detach(capture)
        if self._checker is not None:
            self._checker.cancel()
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._path is not None:
            # Only our own socket: a newer daemon may have replaced it.
            with contextlib.suppress(FileNotFoundError):
                st = self._path.stat()
                if stat.S_ISSOCK(st.st_mode) and st.st_ino == self._inode:
                    self._path.unlink()
            self._path = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        capture = None
        try:
            try:
                capture = await self._open(reader, writer)
            except CaptureRequestError as exc:
                writer.write(json.dumps({"error": str(exc)}).encode() + b"\n")
                return
            await self._follow(reader, capture)
        except (ConnectionError, asyncio.IncompleteReadError):
            # A reader that vanished (a reset when it closed with frames
            # unread): detached below, and said, as for a plain close.
            if capture is not None and not capture.ended:
                log.info("capture %d: the reader went away", capture.capture_id)
        except asyncio.CancelledError:
            # The daemon closing: detached below.
            pass
        except ValueError:
            # A line longer than MAX_REQUEST after the request: not pvs-tcpdump.
            log.warning("capture client dropped: it sent an overlong line")
        finally:
            self._clients.discard(task)
            if capture is not None:
                self._detach(capture)
            writer.close()

    async def _open(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Capture:
        """Read the request, find the port, compile the filter, attach; answer ``ok``."""
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
        except TimeoutError:
            raise CaptureRequestError(
                f"no capture request within {REQUEST_TIMEOUT:.0f} seconds"
            ) from None
        except ValueError:
            raise CaptureRequestError(
                f"the capture request is longer than {MAX_REQUEST} bytes"
            ) from None
        port, expression, snaplen = _parse_request(line)
        bridge, port_type, source = self._find_port(port)
        keep = await asyncio.to_thread(_compile, expression, snaplen)
        # The port may have gone while the filter compiled.
        bridge, port_type, source = self._find_port(port)
        capture = Capture(
            self._next_id,
            port,
            bridge,
            port_type,
            expression,
            snaplen,
            keep,
            writer.transport,
            _peer_pid(writer),
            source,
        )
        self._next_id += 1
        answer = {"port": port, "bridge": bridge, "type": port_type, "snaplen": snaplen}
        writer.write(json.dumps({"ok": answer}).encode() + b"\n")
        writer.write(section_header() + interface_description(port, snaplen))
        self._attach(capture)
        log.info(
            "capture %d on %s (%s) started, filter %r",
            capture.capture_id,
            port,
            bridge,
            expression,
        )
        return capture

    async def _follow(self, reader: asyncio.StreamReader, capture: Capture) -> None:
        """Wait for the client's ``stop`` (statistics, then close) or its disappearance."""
        while not capture.ended:
            line = await reader.readline()
            if not line:
                log.info("capture %d: the reader went away", capture.capture_id)
                return
            if line.strip() == b"stop":
                capture.end()
                log.info(
                    "capture %d on %s stopped: %d accepted, %d dropped",
                    capture.capture_id,
                    capture.port,
                    capture.accepted,
                    capture.dropped,
                )
                return

    # -- ports --------------------------------------------------------------------------

    def _find_port(self, name: str) -> tuple[str, str, Source]:
        """The bridge, type and frame source of port ``name``; refused when there is none."""
        for dp in self.daemon.datapaths.values():
            found = dp.ofp.find_port(name)
            if found is None:
                continue
            bridge, port = found
            if port.odp_port is None or port.type in TUNNEL_TYPES:
                # No device carries what crosses a patch port or enters and
                # leaves a tunnel port: translation hands it over (capture_points.py).
                return bridge.name, port.type, (dp.ofp, name)
            device = dp.devices.get(port.odp_port)
            if device is None:
                raise CaptureRequestError(f"{name}: the port has no device to capture on")
            return bridge.name, port.type, device
        raise CaptureRequestError(f"{name}: no such port (no bridge has a port of this name)")

    def _attach(self, capture: Capture) -> None:
        self.captures[capture.capture_id] = capture
        tap = self._taps.get(capture.source)
        if tap is None:
            tap = self._taps[capture.source] = _Tap()
            if isinstance(capture.source, tuple):
                self._watch_point(*capture.source)
            else:
                capture.source.capture = tap
        tap.captures.append(capture)

    def _detach(self, capture: Capture) -> None:
        if self.captures.pop(capture.capture_id, None) is None:
            return
        tap = self._taps.get(capture.source)
        if tap is None:
            return
        tap.captures.remove(capture)
        if tap.captures:
            return
        del self._taps[capture.source]
        if isinstance(capture.source, tuple):
            ofp, name = capture.source
            ofp.unwatch_point(name)
            # The installed flows lose their capture actions now, not at the next packet.
            ofp.revalidate(self.daemon.clock())
        elif capture.source.capture is tap:
            capture.source.capture = None

    def _watch_point(self, ofp: Ofproto, name: str) -> None:
        if ofp.datapath.on_userspace is None:
            ofp.datapath.on_userspace = lambda upcalls: self._from_datapath(ofp, upcalls)
        ofp.watch_point(name)
        # Installed flows that cross the port gain the action at once, so a
        # dump-flows right after attaching shows it.
        ofp.revalidate(self.daemon.clock())

    def _from_datapath(self, ofp: Ofproto, upcalls: list[tuple[OdpUserspace, bytes]]) -> None:
        """Frames the datapath's capture actions handed over, to the captures of their port."""
        points = ofp.capture_points
        batches: dict[tuple[str, str], list[bytes]] = {}
        for action, frame in upcalls:
            found = points.lookup(action)
            if found is not None:
                batches.setdefault(found, []).append(frame)
        for (port, direction), frames in batches.items():
            tap = self._taps.get((ofp, port))
            if tap is not None:
                tap.frames(port, direction, frames)

    def _port_gone(self, capture: Capture) -> bool:
        try:
            _, _, source = self._find_port(capture.port)
        except CaptureRequestError:
            return True
        return source != capture.source

    async def _check_ports(self) -> None:
        """End the captures whose port was removed (or replaced by another device)."""
        while True:
            await asyncio.sleep(PORT_CHECK_INTERVAL)
            for capture in list(self.captures.values()):
                if self._port_gone(capture):
                    log.info("capture %d: port %s went away", capture.capture_id, capture.port)
                    capture.end(f"port {capture.port} was removed")
                    self._detach(capture)

    # -- capture/show ---------------------------------------------------------------------

    def show(self) -> str:
        """``capture/show``: every active capture and its counts, oldest first."""
        return "".join(c.describe() for c in self.captures.values())


def _parse_request(line: bytes) -> tuple[str, str, int]:
    """The port, filter expression and snapshot length a request asks for."""
    try:
        request: Any = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CaptureRequestError("the capture request is not a JSON object") from None
    if not isinstance(request, dict):
        raise CaptureRequestError("the capture request is not a JSON object")
    port = request.get("port")
    expression = request.get("filter", "")
    snaplen = request.get("snaplen", DEFAULT_SNAPLEN)
    if not isinstance(port, str) or not port:
        raise CaptureRequestError("the capture request names no port")
    if not isinstance(expression, str):
        raise CaptureRequestError("the filter expression must be a string")
    if not isinstance(snaplen, int) or isinstance(snaplen, bool):
        raise CaptureRequestError("the snapshot length must be a number")
    if not 0 < snaplen <= DEFAULT_SNAPLEN:
        raise CaptureRequestError(
            f"snapshot length {snaplen} is out of range (1 to {DEFAULT_SNAPLEN})"
        )
    return port, expression, snaplen


def _compile(expression: str, snaplen: int) -> Callable[[bytes], int]:
    """The filter as a function from a frame to how much of it to keep (0: none).

    An empty expression keeps everything and needs no libpcap.
    """
    if not expression.strip():
        program: Sequence[tuple[int, int, int, int]] = ((_BPF_RET_K, 0, 0, snaplen),)
    else:
        try:
            program = compile_filter(expression, snaplen)
        except FilterError as exc:
            raise CaptureRequestError(f"filter {json.dumps(expression)}: {exc}") from None
        except LibpcapMissingError as exc:
            raise CaptureRequestError(str(exc)) from None
    return BpfProgram(program).run


def _peer_pid(writer: asyncio.StreamWriter) -> int | None:
    """The client's process id, as the kernel vouches for it (SO_PEERCRED)."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid: int = struct.unpack("3i", creds)[0]
    return pid


__all__ = ["SOCKET_NAME", "Capture", "CaptureRequestError", "CaptureServer"]
