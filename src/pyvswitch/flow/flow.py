"""The readable view of a flow key: one attribute per field of ``struct flow``.

Translation, tests and display work on :class:`Flow`; the datapath works on
the packed integer (:mod:`pyvswitch.flow.layout`). Converting between them is
a loop over the field table, which is fine on the slow path only.
"""

from __future__ import annotations

from pyvswitch.flow.extract import extract_key
from pyvswitch.flow.layout import FIELDS


class Flow:
    """Every field of a flow, as integers (MAC and IP addresses too).

    Field meanings follow Open vSwitch (see :mod:`pyvswitch.flow.layout`).
    Flows compare equal when all their fields do.
    """

    __slots__ = (
        "arp_sha",
        "arp_tha",
        "dl_dst",
        "dl_src",
        "dl_type",
        "in_port",
        "ipv6_dst",
        "ipv6_label",
        "ipv6_src",
        "metadata",
        "nd_target",
        "nw_dst",
        "nw_frag",
        "nw_proto",
        "nw_src",
        "nw_tos",
        "nw_ttl",
        "reg0",
        "reg1",
        "reg2",
        "reg3",
        "reg4",
        "reg5",
        "reg6",
        "reg7",
        "reg8",
        "reg9",
        "reg10",
        "reg11",
        "reg12",
        "reg13",
        "reg14",
        "reg15",
        "tcp_flags",
        "tp_dst",
        "tp_src",
        "tun_dst",
        "tun_flags",
        "tun_id",
        "tun_ipv6_dst",
        "tun_ipv6_src",
        "tun_src",
        "tun_tos",
        "tun_tp_dst",
        "tun_tp_src",
        "tun_ttl",
        "vlan_tci",
        "vlan_tci1",
        "vlan_tpid",
        "vlan_tpid1",
    )

    metadata: int
    tun_id: int
    tun_src: int
    tun_dst: int
    tun_ipv6_src: int
    tun_ipv6_dst: int
    tun_tos: int
    tun_ttl: int
    tun_flags: int
    tun_tp_src: int
    tun_tp_dst: int
    in_port: int
    dl_dst: int
    dl_src: int
    vlan_tpid: int
    vlan_tci: int
    vlan_tpid1: int
    vlan_tci1: int
    dl_type: int
    nw_src: int
    nw_dst: int
    ipv6_src: int
    ipv6_dst: int
    ipv6_label: int
    nw_proto: int
    nw_tos: int
    nw_ttl: int
    nw_frag: int
    arp_sha: int
    arp_tha: int
    nd_target: int
    tp_src: int
    tp_dst: int
    tcp_flags: int
    reg0: int
    reg1: int
    reg2: int
    reg3: int
    reg4: int
    reg5: int
    reg6: int
    reg7: int
    reg8: int
    reg9: int
    reg10: int
    reg11: int
    reg12: int
    reg13: int
    reg14: int
    reg15: int

    def __init__(self, **fields: int) -> None:
        for name in FIELDS:
            setattr(self, name, 0)
        for name, value in fields.items():
            if name not in FIELDS:
                raise TypeError(f"Flow has no field {name!r}")
            setattr(self, name, value)

    @classmethod
    def from_key(cls, key: int) -> Flow:
        """Unpack a packed key."""
        flow = cls.__new__(cls)
        for name, fld in FIELDS.items():
            setattr(flow, name, (key >> fld.shift) & ((1 << fld.bits) - 1))
        return flow

    def to_key(self) -> int:
        """Pack this flow into a key."""
        key = 0
        for name, fld in FIELDS.items():
            key |= fld.put(getattr(self, name))
        return key

    def copy(self) -> Flow:
        """An independent copy."""
        return Flow.from_key(self.to_key())

    def assign(self, other: Flow) -> None:
        """Make this flow equal to ``other``, in place (holders of it see the change)."""
        for name in FIELDS:
            setattr(self, name, getattr(other, name))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Flow):
            return NotImplemented
        return self.to_key() == other.to_key()

    def __hash__(self) -> int:
        return hash(self.to_key())

    def __repr__(self) -> str:
        set_fields = ", ".join(
            f"{name}={getattr(self, name):#x}" for name in FIELDS if getattr(self, name)
        )
        return f"Flow({set_fields})"


def flow_extract(frame: bytes, in_port: int = 0) -> Flow:
    """Extract the flow of ``frame`` received on ``in_port`` (see :func:`extract_key`)."""
    return Flow.from_key(extract_key(frame, in_port))
