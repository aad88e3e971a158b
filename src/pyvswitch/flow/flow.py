"""The readable view of a flow key: one attribute per field of ``struct flow``.

Translation, tests and display work on :class:`Flow`; the datapath works on
the packed integer (:mod:`pyvswitch.flow.layout`). Converting between them is
a loop over the field table, which is fine on the slow path only.

The 64 ``tun_metadataN`` fields are attributes too, but they are kept
together as one number (their slots, as the key lays them out) and one
present map, so that a flow without Geneve options costs two attributes,
not 65, when it is converted. Writing ``tun_metadataN`` also marks field N
present, as Open vSwitch's ``tun_metadata_write()`` does (a ``set_field``
makes the option exist); clearing a bit of ``tun_md_present`` clears that
field's slot, so an absent field always reads as zero.
"""

from __future__ import annotations

from pyvswitch.flow.extract import extract_key
from pyvswitch.flow.layout import FIELDS, TUN_METADATA_FIELDS, TUN_METADATA_NUM

_SLOT_BITS = FIELDS["tun_metadata0"].bits
_SLOT_FULL = (1 << _SLOT_BITS) - 1
#: The shift of the lowest slot (tun_metadata0): all slots sit above it, in order.
_SLOTS_SHIFT = FIELDS["tun_metadata0"].shift
_PRESENT = FIELDS["tun_md_present"]
_PRESENT_FULL = (1 << _PRESENT.bits) - 1
_MD_NAMES = frozenset((*TUN_METADATA_FIELDS, "tun_md_present"))
#: The fields kept as plain attributes: (name, shift, all-ones of its width).
_PLAIN = tuple(
    (name, fld.shift, (1 << fld.bits) - 1) for name, fld in FIELDS.items() if name not in _MD_NAMES
)
_PLAIN_NAMES = tuple(name for name, _, _ in _PLAIN)

assert all(
    FIELDS[f"tun_metadata{i}"].shift == _SLOTS_SHIFT + i * _SLOT_BITS
    for i in range(TUN_METADATA_NUM)
), "the tun_metadata slots must be contiguous, field 0 lowest"


class Flow:
    """Every field of a flow, as integers (MAC and IP addresses too).

    Field meanings follow Open vSwitch (see :mod:`pyvswitch.flow.layout`).
    Flows compare equal when all their fields do.
    """

    __slots__ = (*_PLAIN_NAMES, "_md_present", "_md_slots")

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
    tun_gnv_opts: int
    tun_gnv_len: int
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
    _md_present: int
    _md_slots: int

    def __init__(self, **fields: int) -> None:
        for name in _PLAIN_NAMES:
            setattr(self, name, 0)
        self._md_present = 0
        self._md_slots = 0
        for name, value in fields.items():
            if name not in FIELDS:
                raise TypeError(f"Flow has no field {name!r}")
            setattr(self, name, value)

    # -- Geneve options as OpenFlow fields ----------------------------------------------

    @property
    def tun_md_present(self) -> int:
        """Bit N is set when ``tun_metadataN`` is present."""
        return self._md_present

    @tun_md_present.setter
    def tun_md_present(self, value: int) -> None:
        value &= _PRESENT_FULL
        gone = self._md_present & ~value
        self._md_present = value
        while gone:
            # An absent field reads as zero: clear the slot of each one removed.
            index = (gone & -gone).bit_length() - 1
            self._md_slots &= ~(_SLOT_FULL << (index * _SLOT_BITS))
            gone &= gone - 1

    def tun_metadata(self, index: int) -> int:
        """The value of ``tun_metadata<index>`` (zero when it is absent)."""
        return (self._md_slots >> (index * _SLOT_BITS)) & _SLOT_FULL

    def set_tun_metadata(self, index: int, value: int) -> None:
        """Write ``tun_metadata<index>``, which makes it present."""
        shift = index * _SLOT_BITS
        self._md_slots = (self._md_slots & ~(_SLOT_FULL << shift)) | (
            (value & _SLOT_FULL) << shift
        )
        self._md_present |= 1 << index

    # -- conversion ------------------------------------------------------------------

    @classmethod
    def from_key(cls, key: int) -> Flow:
        """Unpack a packed key."""
        flow = cls.__new__(cls)
        for name, shift, full in _PLAIN:
            setattr(flow, name, (key >> shift) & full)
        # The option fields' storage is the class's own, set here without
        # going through the properties.
        flow._md_present = (key >> _PRESENT.shift) & _PRESENT_FULL  # noqa: SLF001
        flow._md_slots = key >> _SLOTS_SHIFT  # noqa: SLF001
        return flow

    def to_key(self) -> int:
        """Pack this flow into a key."""
        key = (self._md_slots << _SLOTS_SHIFT) | (self._md_present << _PRESENT.shift)
        for name, shift, full in _PLAIN:
            key |= (getattr(self, name) & full) << shift
        return key

    def copy(self) -> Flow:
        """An independent copy."""
        return Flow.from_key(self.to_key())

    def assign(self, other: Flow) -> None:
        """Make this flow equal to ``other``, in place (holders of it see the change)."""
        for name in _PLAIN_NAMES:
            setattr(self, name, getattr(other, name))
        self._md_present = other._md_present
        self._md_slots = other._md_slots

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Flow):
            return NotImplemented
        return self.to_key() == other.to_key()

    def __hash__(self) -> int:
        return hash(self.to_key())

    def __repr__(self) -> str:
        items = [(name, getattr(self, name)) for name in _PLAIN_NAMES]
        if self._md_present:
            items.append(("tun_md_present", self._md_present))
            items += [
                (f"tun_metadata{i}", self.tun_metadata(i))
                for i in range(TUN_METADATA_NUM)
                if self._md_present >> i & 1
            ]
        set_fields = ", ".join(f"{name}={value:#x}" for name, value in items if value)
        return f"Flow({set_fields})"


def _slot_property(index: int) -> property:
    def get(self: Flow) -> int:
        return self.tun_metadata(index)

    def put(self: Flow, value: int) -> None:
        self.set_tun_metadata(index, value)

    return property(get, put, doc=f"``tun_metadata{index}``; writing it makes it present.")


for _index in range(TUN_METADATA_NUM):
    setattr(Flow, f"tun_metadata{_index}", _slot_property(_index))


def flow_extract(frame: bytes, in_port: int = 0) -> Flow:
    """Extract the flow of ``frame`` received on ``in_port`` (see :func:`extract_key`)."""
    return Flow.from_key(extract_key(frame, in_port))
