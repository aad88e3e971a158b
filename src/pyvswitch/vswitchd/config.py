"""Reading the desired configuration out of the database.

The daemon reconciles this inert description into devices, bridges and the
datapath (see daemon.py). Keeping it plain data makes the diff obvious:
what is in the database and not running is added, what runs and is no longer
in the database is removed, deletions first, as Open vSwitch's
``bridge_reconfigure()`` does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyvswitch.flow.ofp_text import str_to_int
from pyvswitch.ofproto.mac_learning import MAC_DEFAULT_MAX, MAC_ENTRY_DEFAULT_IDLE
from pyvswitch.ofproto.mirror import Mirror

if TYPE_CHECKING:
    import uuid
    from collections.abc import Mapping, Set

    from pyvswitch.ovsdb.database import Database


@dataclass(frozen=True)
class InterfaceConfig:
    """One Interface row, as much of it as the daemon acts on."""

    uuid: uuid.UUID
    name: str
    type: str
    options: tuple[tuple[str, str], ...]
    ofport_request: int | None
    #: The OpenFlow port number the interface had last time (its ``ofport``
    #: column), used when there is no ``ofport_request`` so that numbers, and
    #: the rules that name them, survive a restart. Not part of the identity:
    #: the daemon's own write-back changes it.
    ofport_before: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PortConfig:
    """One Port row with its interface, or one member of a port the daemon cannot run.

    pyvswitch does not bond yet. Rather than run one member of a bond and
    silently ignore the others, :func:`read_config` lists such a port once
    per interface, each entry carrying the same ``error``: the daemon, which
    writes back one result per entry, then gives every member ``ofport -1``
    and the reason, and runs none of them.
    """

    name: str
    interface: InterfaceConfig
    tag: int | None
    trunks: tuple[int, ...]
    vlan_mode: str | None
    error: str | None = None


@dataclass(frozen=True)
class MirrorConfig:
    """One Mirror row of a bridge, its port references as Port names (in UUID order)."""

    uuid: uuid.UUID
    name: str
    select_all: bool
    select_src_port: tuple[str, ...]
    select_dst_port: tuple[str, ...]
    select_vlan: tuple[int, ...]
    output_port: str | None
    output_vlan: int | None
    #: The ``snaplen`` column (the schema allows 14 to 65535); 0 when unset.
    snaplen: int = 0


@dataclass(frozen=True)
class BridgeConfig:
    """One Bridge row."""

    name: str
    datapath_type: str
    fail_mode: str
    ports: tuple[PortConfig, ...] = field(default=())
    mirrors: tuple[MirrorConfig, ...] = field(default=())
    #: ``other_config:hwaddr``: the bridge's own MAC, when set and valid.
    hwaddr: bytes | None = None
    #: ``other_config:mac-aging-time`` and ``mac-table-size`` as Open vSwitch
    #: reads them (0, unset or not a number: the default); the MAC table
    #: keeps them within its bounds (mac_learning.py).
    mac_aging_time: int = int(MAC_ENTRY_DEFAULT_IDLE)
    mac_table_size: int = MAC_DEFAULT_MAX


def _scalar(datum: tuple[Any, ...]) -> Any:
    return datum[0] if datum else None


def read_config(db: Database) -> tuple[list[BridgeConfig], int]:
    """The bridges the database asks for, and its ``next_cfg``."""
    roots = list(db.rows("Open_vSwitch").values())
    if not roots:
        return [], 0
    root = roots[0]
    next_cfg = int(_scalar(root["next_cfg"]) or 0)
    bridges_rows = db.rows("Bridge")
    ports_rows = db.rows("Port")
    iface_rows = db.rows("Interface")
    mirror_rows = db.rows("Mirror")
    bridges = []
    for bridge_uuid in root["bridges"]:
        row = bridges_rows.get(bridge_uuid)
        if row is None:
            continue
        ports = []
        for port_uuid in row["ports"]:
            port = ports_rows.get(port_uuid)
            if port is not None:
                ports.extend(_port_configs(port, iface_rows))
        bridges.append(
            BridgeConfig(
                name=str(_scalar(row["name"])),
                datapath_type=str(_scalar(row["datapath_type"]) or ""),
                fail_mode=str(_scalar(row["fail_mode"]) or "standalone"),
                hwaddr=_hwaddr(row),
                mac_aging_time=_other_config_int(row, "mac-aging-time")
                or int(MAC_ENTRY_DEFAULT_IDLE),
                mac_table_size=_other_config_int(row, "mac-table-size") or MAC_DEFAULT_MAX,
                ports=tuple(sorted(ports, key=lambda p: p.name)),
                mirrors=tuple(
                    _mirror_config(m, mirror_rows[m], ports_rows)
                    for m in sorted(row["mirrors"])
                    if m in mirror_rows
                ),
            )
        )
    return sorted(bridges, key=lambda b: b.name), next_cfg


def _other_config_int(row: Mapping[str, Any], key: str) -> int:
    """``other_config:KEY`` as Open vSwitch's smap_get_int(..., 0) reads it: 0 unless a C int."""
    text = dict(row["other_config"]).get(key)
    return (str_to_int(text) or 0) if isinstance(text, str) else 0


def _hwaddr(row: Mapping[str, Any]) -> bytes | None:
    """A bridge's ``other_config:hwaddr``; an unusable one is ignored, as OVS ignores it."""
    text = dict(row["other_config"]).get("hwaddr")
    if not isinstance(text, str):
        return None
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) in (1, 2) for p in parts):
        return None
    try:
        mac = bytes(int(p, 16) for p in parts)
    except ValueError:
        return None
    # Multicast and all-zero addresses cannot be a port's address.
    return None if mac[0] & 1 or mac == bytes(6) else mac


def _port_configs(port: Mapping[str, Any], iface_rows: Mapping[Any, Any]) -> list[PortConfig]:
    """The entries for one Port row: one, or one per member for a bond (see PortConfig)."""
    name = str(_scalar(port["name"]))
    members = sorted(port["interfaces"])
    error = None
    if len(members) > 1:
        error = f"pyvswitch does not support bonds yet (port {name} has {len(members)} interfaces)"
    return [
        PortConfig(
            name=name,
            interface=_interface_config(iface_uuid, iface_rows[iface_uuid]),
            tag=_opt_int(port["tag"]),
            trunks=tuple(sorted(int(t) for t in port["trunks"])),
            vlan_mode=_scalar(port["vlan_mode"]),
            error=error,
        )
        for iface_uuid in members
    ]


def _mirror_config(
    mirror_uuid: uuid.UUID, mirror: Mapping[str, Any], ports_rows: Mapping[Any, Any]
) -> MirrorConfig:
    def names(column: str) -> tuple[str, ...]:
        # Port references are weak: the database drops those to deleted ports.
        return tuple(str(_scalar(ports_rows[p]["name"])) for p in sorted(mirror[column]))

    output = names("output_port")
    return MirrorConfig(
        uuid=mirror_uuid,
        name=str(_scalar(mirror["name"])),
        select_all=bool(_scalar(mirror["select_all"])),
        select_src_port=names("select_src_port"),
        select_dst_port=names("select_dst_port"),
        select_vlan=tuple(sorted(int(v) for v in mirror["select_vlan"])),
        output_port=output[0] if output else None,
        output_vlan=_opt_int(mirror["output_vlan"]),
        snaplen=_opt_int(mirror["snaplen"]) or 0,
    )


def mirror_settings(
    bridge: str, cfg: MirrorConfig, ports: Set[str]
) -> tuple[Mirror | None, list[tuple[int, str]]]:
    """The mirror ofproto runs for ``cfg`` in a bridge with ``ports``, or None.

    Also the messages ovs-vswitchd logs about it, with their levels: a mirror
    with no output, or whose output port is not in the bridge, is ignored; one
    with both an output port and an output VLAN uses the port; selected ports
    that are not in the bridge are left out.
    """
    where = f"bridge {bridge}: mirror {cfg.name}"
    messages: list[tuple[int, str]] = []
    if cfg.output_port is not None:
        if cfg.output_port not in ports:
            return None, [(logging.ERROR, f"{where} outputs to port not on bridge")]
        if cfg.output_vlan is not None:
            messages.append(
                (
                    logging.ERROR,
                    f"{where} specifies both output port and output vlan; ignoring output vlan",
                )
            )
    elif cfg.output_vlan is None:
        return None, [(logging.ERROR, f"{where} does not specify output; ignoring")]
    selected: dict[str, frozenset[str]] = {}
    for column in ("select_src_port", "select_dst_port"):
        names = () if cfg.select_all else getattr(cfg, column)
        messages += [
            (logging.WARNING, f"{where} cannot match on nonexistent port {name}")
            for name in names
            if name not in ports
        ]
        selected[column] = frozenset(name for name in names if name in ports)
    mirror = Mirror(
        cfg.name,
        select_all=cfg.select_all,
        select_src_port=selected["select_src_port"],
        select_dst_port=selected["select_dst_port"],
        select_vlan=frozenset(cfg.select_vlan),
        output_port=cfg.output_port,
        output_vlan=None if cfg.output_port is not None else cfg.output_vlan,
        key=str(cfg.uuid),
        # OVS treats the largest value as no cut (mirror_set(): a snaplen
        # below 65535 inserts trunc).
        snaplen=cfg.snaplen if cfg.snaplen < 0xFFFF else 0,
    )
    return mirror, messages


def _interface_config(iface_uuid: uuid.UUID, iface: Mapping[str, Any]) -> InterfaceConfig:
    request = _scalar(iface["ofport_request"])
    before = _scalar(iface["ofport"])
    return InterfaceConfig(
        uuid=iface_uuid,
        name=str(_scalar(iface["name"])),
        type=str(_scalar(iface["type"]) or ""),
        options=tuple(sorted(_pairs(iface["options"]))),
        ofport_request=int(request) if request is not None else None,
        ofport_before=int(before) if before is not None and int(before) > 0 else None,
    )


def _pairs(datum: Mapping[Any, Any] | tuple[Any, ...]) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in datum]


def _opt_int(datum: tuple[Any, ...]) -> int | None:
    value = _scalar(datum)
    return None if value is None else int(value)
