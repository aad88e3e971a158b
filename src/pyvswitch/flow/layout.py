"""Where each field of the flow key lives inside the packed integer.

The key is the concatenation, most significant byte first, of the fields
below, then read as one big-endian integer. Two choices make extraction cheap:

* Header fields are laid out in the order the wire carries them where that is
  possible (``dl_dst`` then ``dl_src``, ``nw_src`` then ``nw_dst``, ``tp_src``
  then ``tp_dst``), so the extractor copies slices of the frame unchanged.
* Fields a frame never sets (registers, metadata, tunnel metadata) sit in the
  most significant bytes, so the extractor does not emit them at all: leading
  zero bytes do not change an integer.

The names and meanings are those of Open vSwitch's ``struct flow``: ICMP type
and code live in ``tp_src``/``tp_dst``, the ARP opcode in ``nw_proto``, ARP
addresses in ``nw_src``/``nw_dst``/``arp_sha``/``arp_tha``, the neighbour
discovery link-layer addresses in ``arp_sha``/``arp_tha``. ``vlan_tci`` carries
bit 0x1000 (the CFI/DEI position) as "a tag is present", as OVS does.

**Geneve options** come in two forms, as in Open vSwitch (whose datapath keeps
them in "UDPIF" form and whose translation in mapped form):

* ``tun_gnv_opts``/``tun_gnv_len``: the options of a packet that came out of
  a Geneve tunnel, as the wire had them (right-aligned in 252 bytes, the
  largest option area a Geneve header can carry, and their length in bytes).
  This is the datapath's view: it needs no TLV map, so the datapath pops,
  prints and parses ``geneve({class=0xffff,type=0x80,len=4,0xa})`` by itself,
  and a megaflow can match the options' layout exactly.
* ``tun_metadata0`` .. ``tun_metadata63`` and ``tun_md_present``: the
  OpenFlow fields a bridge's TLV map (``add-tlv-map``) gives those options.
  Each field has a fixed 124-byte slot (the largest option) holding the
  option's data right-aligned, so a 4-byte option with data 0xa is the number
  0xa; ``tun_md_present`` has bit N set when field N is present, which is
  OVS's ``tun_metadata.present.map``: OpenFlow matches it (a rule on
  ``tun_metadata0=0xa`` needs the option, ``tun_metadata0`` alone only
  needs it there, a megaflow prints ``tun_metadata0=NP`` for "must be
  absent"). Slot bits beyond the mapped length are always zero, and an
  absent field's slot is zero. Translation fills these from the raw options
  with the bridge's map (:mod:`pyvswitch.ofproto.tlv_map`).

Both sit above everything else, the present map lowest and field 0's slot
just above it, so that a key without options (every packet the extractor
sees) pays nothing, and one with a small option in field 0 stays small.
"""

from __future__ import annotations

from dataclasses import dataclass

# (name, size in bytes), most significant first. Adding a field that frames
# never set belongs at the top, so extraction needs no change.
LAYOUT: tuple[tuple[str, int], ...] = (
    *((f"tun_metadata{i}", 124) for i in range(63, -1, -1)),
    ("tun_md_present", 8),
    ("tun_gnv_opts", 252),
    ("tun_gnv_len", 1),
    *((f"reg{i}", 4) for i in range(15, -1, -1)),
    ("metadata", 8),
    ("tun_id", 8),
    ("tun_src", 4),
    ("tun_dst", 4),
    ("tun_ipv6_src", 16),
    ("tun_ipv6_dst", 16),
    ("tun_tos", 1),
    ("tun_ttl", 1),
    ("tun_flags", 2),
    ("tun_tp_src", 2),
    ("tun_tp_dst", 2),
    ("in_port", 4),
    ("dl_dst", 6),
    ("dl_src", 6),
    ("vlan_tpid", 2),
    ("vlan_tci", 2),
    ("vlan_tpid1", 2),
    ("vlan_tci1", 2),
    ("dl_type", 2),
    ("nw_src", 4),
    ("nw_dst", 4),
    ("ipv6_src", 16),
    ("ipv6_dst", 16),
    ("ipv6_label", 4),
    ("nw_proto", 1),
    ("nw_tos", 1),
    ("nw_ttl", 1),
    ("nw_frag", 1),
    ("arp_sha", 6),
    ("arp_tha", 6),
    ("nd_target", 16),
    ("tp_src", 2),
    ("tp_dst", 2),
    ("tcp_flags", 2),
)

#: Bits of ``nw_frag``, as OVS's FLOW_NW_FRAG_ANY and FLOW_NW_FRAG_LATER.
FRAG_ANY = 1
FRAG_LATER = 2
#: The "tag present" bit OVS keeps in ``vlan_tci``.
VLAN_CFI = 0x1000
VLAN_VID_MASK = 0x0FFF
VLAN_PCP_MASK = 0xE000
#: The ``dl_type`` OVS gives 802.3 frames with no SNAP header.
DL_TYPE_NONE = 0x05FF
#: Bits of ``tun_flags``, as OVS's FLOW_TNL_F_* (the datapath's ``flags(...)``).
TNL_F_OAM = 1
TNL_F_DONT_FRAGMENT = 2
TNL_F_CSUM = 4
TNL_F_KEY = 8
#: The tunnel fields, in the order OVS's ``struct flow_tnl`` keeps them.
TUNNEL_FIELDS = (
    "tun_id",
    "tun_src",
    "tun_dst",
    "tun_ipv6_src",
    "tun_ipv6_dst",
    "tun_tos",
    "tun_ttl",
    "tun_flags",
    "tun_tp_src",
    "tun_tp_dst",
    # The Geneve options, raw and mapped: the slots of the mapped fields are
    # not listed, because clearing the present map clears them (see Flow).
    "tun_md_present",
    "tun_gnv_opts",
    "tun_gnv_len",
)
#: How many ``tun_metadataN`` fields there are, and the size of each slot.
TUN_METADATA_NUM = 64
TUN_METADATA_SLOT = 124
#: The option space a TLV map can hand out in all (OVS's TUN_METADATA_TOT_OPT_SIZE).
TUN_METADATA_TOT_SIZE = 256
#: The ``tun_metadataN`` storage fields, by N.
TUN_METADATA_FIELDS = tuple(f"tun_metadata{i}" for i in range(TUN_METADATA_NUM))
#: The most Geneve option bytes one header carries (6 bits of 4-byte words).
GENEVE_OPTS_MAX = 252
#: OpenFlow's port number for the bridge's own (local) port.
OFPP_LOCAL = 0xFFFE


@dataclass(frozen=True, slots=True)
class StorageField:
    """One field of the key: its bit position and width, and a full-width mask."""

    name: str
    shift: int
    nbytes: int
    bits: int  # meaningful bits; ipv6_label is 20, tcp_flags 12, nw_frag 2
    mask: int  # the field's meaningful bits, shifted into place

    def get(self, key: int) -> int:
        """Read this field from a packed key."""
        return (key >> self.shift) & ((1 << self.bits) - 1)

    def put(self, value: int) -> int:
        """Place ``value`` at this field's position (the caller ORs it into a key)."""
        return (value & ((1 << self.bits) - 1)) << self.shift


_BITS = {"ipv6_label": 20, "tcp_flags": 12, "nw_frag": 2}


def _build() -> dict[str, StorageField]:
    fields: dict[str, StorageField] = {}
    shift = sum(size for _, size in LAYOUT) * 8
    for name, size in LAYOUT:
        shift -= size * 8
        bits = _BITS.get(name, size * 8)
        fields[name] = StorageField(name, shift, size, bits, ((1 << bits) - 1) << shift)
    return fields


#: Every storage field by name.
FIELDS: dict[str, StorageField] = _build()
#: Total width of a key, in bits.
KEY_BITS = sum(size for _, size in LAYOUT) * 8
#: Bit offset of the in_port field; extraction ORs ``in_port << IN_PORT_SHIFT``.
IN_PORT_SHIFT = FIELDS["in_port"].shift
#: Width in bytes of everything below in_port: what extraction emits.
PACKET_BYTES = IN_PORT_SHIFT // 8
