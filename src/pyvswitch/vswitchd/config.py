"""Reading the desired configuration out of the database.

The daemon reconciles this inert description into devices, bridges and the
datapath (see daemon.py). Keeping it plain data makes the diff obvious:
what is in the database and not running is added, what runs and is no longer
in the database is removed, deletions first, as Open vSwitch's
``bridge_reconfigure()`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uuid
    from collections.abc import Mapping

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
class BridgeConfig:
    """One Bridge row."""

    name: str
    datapath_type: str
    fail_mode: str
    ports: tuple[PortConfig, ...] = field(default=())


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
                ports=tuple(sorted(ports, key=lambda p: p.name)),
            )
        )
    return sorted(bridges, key=lambda b: b.name), next_cfg


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
