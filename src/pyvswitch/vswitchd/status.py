"""What the daemon writes back about each interface, as ovs-vswitchd does.

Open vSwitch keeps the ``Interface`` table telling what is running:
``admin_state`` and ``link_state`` (``up``/``down``), ``mtu``,
``mac_in_use``, ``ifindex``, ``link_resets``, and every few seconds
``statistics``. This module works out those columns from the devices and
ofproto's ports and returns only the updates that change something, so an
idle switch does not write at all.

Per kind of interface, as ovs-vswitchd 3.1 writes them:

* a device the daemon drives: its state, MTU and Ethernet address; for a
  dummy device (a bridge's own port on a dummy datapath included) ``ifindex``
  from its ``options:ifindex`` (0 without one, or for a negative one) and
  ``link_resets`` 0, as netdev-dummy counts no carrier changes. A real
  device's ifindex and carrier resets are not known to the netdev contract
  yet, so those two columns are left alone. Statistics: for a dummy device
  the four counters Open vSwitch's netdev-dummy reports (``rx_packets``,
  ``rx_bytes``, ``tx_packets``, ``tx_bytes``, without its per-queue and
  test-only custom counters), for other devices every counter the device
  keeps;
* a patch port (no device): ``up``, no MTU, ``ifindex`` 0, ``link_resets``
  0, and its four packet and byte counters from ofproto. Its ``mac_in_use``
  is :func:`vport_mac` of its name, the address ``pvs-ofctl show`` gives it
  (Open vSwitch makes a random one each time it creates the port, so there is
  no value of its to copy). A tunnel port the same, plus in
  ``status`` the device its remote address routes by
  (``tunnel_egress_iface``) and whether that device has a carrier
  (``tunnel_egress_iface_carrier``). Open vSwitch 3.1 writes these only when
  a kernel route announcement comes in; we look the route up every time, so
  they are there on a dummy datapath too;
* an interface that is not running (it failed, or its device went away):
  the columns are cleared, as Open vSwitch clears them.

``Open_vSwitch other_config:stats-update-interval`` (milliseconds, at least
and by default 5000) sets how often statistics are written. The same timer
writes each running mirror's ``statistics`` (``tx_packets``, ``tx_bytes``:
the copies it sent), as ovs-vswitchd does.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import uuid
    from collections.abc import Mapping

    from pyvswitch.netdev import Netdev
    from pyvswitch.ofproto.bridge import OfPort
    from pyvswitch.ovsdb.data import Datum
    from pyvswitch.ovsdb.database import Database

    #: What runs behind an interface name: its device (None for a patch port) and its port.
    Running: TypeAlias = tuple[Netdev | None, OfPort]

#: Open vSwitch's default and smallest statistics interval (ms).
STATS_INTERVAL_MS = 5000
#: The counters Open vSwitch's dummy netdev reports under their standard names.
DUMMY_COUNTERS = ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes")
#: The status columns, without ``statistics``.
STATUS_COLUMNS = ("admin_state", "link_state", "mtu", "mac_in_use", "ifindex", "link_resets")


def vport_mac(name: str) -> bytes:
    """The Ethernet address of a port without a device (patch, tunnel) called ``name``.

    Open vSwitch gives each such port a random address when it creates it
    (netdev-vport), so ``ovs-vsctl`` and ``ovs-ofctl show`` show a new one
    after every restart. Ours is locally administered and made from the name
    instead, so it stays the same and every command shows the same one.
    """
    return b"\x02" + hashlib.sha256(name.encode()).digest()[:5]


def stats_interval_ms(db: Database) -> int:
    """``other_config:stats-update-interval``, read as Open vSwitch reads it."""
    for row in db.rows("Open_vSwitch").values():
        value = dict(row["other_config"]).get("stats-update-interval")
        try:
            wanted = int(value) if value is not None else STATS_INTERVAL_MS
        except ValueError:
            wanted = STATS_INTERVAL_MS
        return max(wanted, STATS_INTERVAL_MS)
    return STATS_INTERVAL_MS


def _mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def _state(up: bool) -> str:
    return "up" if up else "down"


def wanted_status(running: Running) -> dict[str, Datum]:
    """The status columns (as datums) for one running interface."""
    dev, port = running
    if dev is None:
        return {
            "admin_state": ("up",),
            "link_state": ("up",),
            "mtu": (),
            "mac_in_use": (_mac_text(vport_mac(port.name)),),
            "ifindex": (0,),
            "link_resets": (0,),
        }
    status: dict[str, Datum] = {
        "admin_state": (_state(dev.up),),
        "link_state": (_state(dev.carrier),),
        "mtu": (dev.mtu,),
        "mac_in_use": (_mac_text(dev.mac),),
    }
    if dev.type == "dummy":
        # Open vSwitch writes a negative (or no) interface index as 0.
        ifindex = getattr(dev, "ifindex", None)
        status["ifindex"] = (max(ifindex, 0) if isinstance(ifindex, int) else 0,)
        status["link_resets"] = (0,)
    return status


def wanted_statistics(running: Running) -> Datum:
    """The ``statistics`` map (as a datum) for one running interface."""
    dev, port = running
    if dev is None:
        counters = port.counters
        values = {name: getattr(counters, name) for name in DUMMY_COUNTERS}
    elif dev.type == "dummy":
        values = {name: getattr(dev.stats, name) for name in DUMMY_COUNTERS}
    else:
        values = dev.stats.as_dict()
    return tuple(sorted(values.items()))


def status_updates(
    db: Database,
    interfaces: Mapping[str, Running],
    *,
    statistics: bool,
    egress: Mapping[str, tuple[str, bool] | None] | None = None,
) -> list[dict[str, Any]]:
    """``update`` operations for the Interface rows whose status (or statistics) changed.

    ``egress`` gives, for each tunnel interface, the device its remote
    address routes by and that device's carrier (None: no route).
    """
    ops = []
    egress = egress or {}
    for row_uuid, row in db.rows("Interface").items():
        name = row["name"][0]
        running = interfaces.get(name)
        if running is None:
            wanted = dict.fromkeys((*STATUS_COLUMNS, "statistics"), ())
        else:
            wanted = wanted_status(running)
            if statistics:
                wanted["statistics"] = wanted_statistics(running)
            if name in egress:
                wanted["status"] = _egress_status(egress[name])
        changed = {col: _to_json(value) for col, value in wanted.items() if row[col] != value}
        if changed:
            ops.append(_update(row_uuid, changed))
    return ops


def _egress_status(egress: tuple[str, bool] | None) -> Datum:
    if egress is None:
        return ()
    dev, carrier = egress
    return (("tunnel_egress_iface", dev), ("tunnel_egress_iface_carrier", _state(carrier)))


def mirror_statistics_updates(
    db: Database, sent: Mapping[str, tuple[int, int]]
) -> list[dict[str, Any]]:
    """``update`` operations for the Mirror rows whose ``statistics`` changed.

    ``sent`` is (packets, bytes) each running mirror sent, by its row's UUID.
    As ovs-vswitchd, a mirror that does not run (it was ignored) is left alone.
    """
    ops = []
    for row_uuid, row in db.rows("Mirror").items():
        counts = sent.get(str(row_uuid))
        if counts is None:
            continue
        wanted = (("tx_bytes", counts[1]), ("tx_packets", counts[0]))
        if row["statistics"] != wanted:
            ops.append(_update(row_uuid, {"statistics": _to_json(wanted)}, table="Mirror"))
    return ops


def _update(row_uuid: uuid.UUID, row: dict[str, Any], table: str = "Interface") -> dict[str, Any]:
    return {
        "op": "update",
        "table": table,
        "where": [["_uuid", "==", ["uuid", str(row_uuid)]]],
        "row": row,
    }


def _to_json(datum: Datum) -> Any:
    """The OVSDB JSON of the datums this module writes: a scalar, empty, or a map."""
    if not datum:
        return ["set", []]
    if isinstance(datum[0], tuple):
        return ["map", [list(pair) for pair in datum]]
    return datum[0]
