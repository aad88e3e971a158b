"""The route table: Open vSwitch's priorities, source addresses, listing order and parsers.

The expected listings and messages were taken from Open vSwitch 3.1 (the
ovs-vswitchd in tests/interop's sandbox, some run with this machine's kernel
routes); tests/interop/test_ovs_tnl_route.py compares the commands live.
"""

from __future__ import annotations

import socket
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_address,
    ip_interface,
    ip_network,
)

import pytest

from pyvswitch.ofproto.tnl_route import (
    KernelRoute,
    OvsParseError,
    RouteError,
    RouteTable,
    format_lookup,
    inet_pton4,
    inet_pton6,
    ip_parse_cidr,
    ip_parse_masked,
    ipv6_parse_cidr,
    parse_route_prefix,
    scan_pkt_mark,
)
from pyvswitch.vswitchd.route_sync import kernel_addresses, kernel_routes

# -- parsers ------------------------------------------------------------------------

PTON_CASES = [
    "1.2.3.4",
    "0.0.0.0",  # noqa: S104 - an address to parse
    "255.255.255.255",
    "256.1.1.1",
    "01.2.3.4",
    "1.2.3",
    "1.2.3.4.5",
    "1..2.3",
    " 1.2.3.4",
    "1.2.3.4 ",
    "0x1.2.3.4",
    "",
    "::",
    "::1",
    "1::",
    "1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7::",
    "::2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7:8:9",
    "1::2::3",
    ":1::2",
    "1:2:3:4:5:6:7:8::",
    "::ffff:1.2.3.4",
    "::1.2.3.4",
    "1:2:3:4:5:6:1.2.3.4",
    "1:2:3:4:5:6:7:1.2.3.4",
    "::1.2.3",
    "fe80::1%eth0",
    "12345::",
    "0:0:0:0:0:0:0:0",
    "ABCD:ef01::",
    "1:",
    ":",
    ":::",
    "1.2.3.4::",
    "::01.2.3.4",
    "2001:db8::x",
]


@pytest.mark.parametrize("text", PTON_CASES)
def test_inet_pton_reads_as_glibc_does(text: str) -> None:
    for family, ours in ((socket.AF_INET, inet_pton4), (socket.AF_INET6, inet_pton6)):
        try:
            expected = int.from_bytes(socket.inet_pton(family, text), "big")
        except OSError:
            expected = None
        assert ours(text) == expected, (family, text)


@pytest.mark.parametrize(
    ("text", "address", "mask"),
    [
        ("1.1.2.92", "1.1.2.92", "255.255.255.255"),
        ("1.1.2.92/24", "1.1.2.92", "255.255.255.0"),
        ("1.1.2.92/255.0.255.0", "1.1.2.92", "255.0.255.0"),
        # ovs_scan() keeps the low 8 bits of an octet and takes a sign.
        ("1.1.2.300/24", "1.1.2.44", "255.255.255.0"),
        ("-1.1.2.3/24", "255.1.2.3", "255.255.255.0"),
        # "/%d" reads decimal: 010 is 10.
        ("01.1.2.3/010", "1.1.2.3", "255.192.0.0"),
        ("1.1.2.3/0", "1.1.2.3", "0.0.0.0"),  # noqa: S104 - a mask, not a bind
    ],
)
def test_ip_parse_masked_takes_what_open_vswitch_takes(text: str, address: str, mask: str) -> None:
    assert ip_parse_masked(text) == (int(IPv4Address(address)), int(IPv4Address(mask)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.1.2.92/33", "1.1.2.92/33: IPv4 network prefix bits not between 0 and 32, inclusive"),
        ("1.1.2.92/-1", "1.1.2.92/-1: IPv4 network prefix bits not between 0 and 32, inclusive"),
        ("1.1.2.x/24", "1.1.2.x/24: invalid IP address"),
        ("1.1.2.92/24x", "1.1.2.92/24x: invalid IP address"),
        ("1.1.2.3/0x10", "1.1.2.3/0x10: invalid IP address"),
        ("0x1.1.2.3/8", "0x1.1.2.3/8: invalid IP address"),
        ("1.1.2.3/", "1.1.2.3/: invalid IP address"),
    ],
)
def test_ip_parse_masked_refuses_with_open_vswitchs_words(text: str, message: str) -> None:
    with pytest.raises(OvsParseError) as error:
        ip_parse_masked(text)
    assert str(error.value) == message


def test_ip_parse_cidr_wants_a_contiguous_mask() -> None:
    assert ip_parse_cidr("1.1.2.92/255.255.0.0") == (int(IPv4Address("1.1.2.92")), 16)
    assert ip_parse_cidr("1.1.2.92") == (int(IPv4Address("1.1.2.92")), 32)
    with pytest.raises(
        OvsParseError, match=r"^1\.1\.2\.92/255\.0\.255\.0: CIDR network required$"
    ):
        ip_parse_cidr("1.1.2.92/255.0.255.0")


@pytest.mark.parametrize(
    ("text", "address", "plen"),
    [
        ("2001:db8::1", "2001:db8::1", 128),
        ("2001:db8::1/64", "2001:db8::1", 64),
        ("2001:db8::1/ffff::", "2001:db8::1", 16),
        ("  2001:db8::1/0", "2001:db8::1", 0),
    ],
)
def test_ipv6_parse_cidr(text: str, address: str, plen: int) -> None:
    assert ipv6_parse_cidr(text) == (int(IPv6Address(address)), plen)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "2001:db8::1/129",
            "2001:db8::1/129: IPv6 network prefix bits not between 0 and 128, inclusive",
        ),
        ("2001:db8::x/64", "2001:db8::x/64: invalid IPv6 address"),
        ("1.2.3.4/24", "1.2.3.4/24: invalid IPv6 address"),
        ("2001:db8::1/ffff:ff::", "2001:db8::1/ffff:ff::: IPv6 CIDR network required"),
        ("2001:db8::1/0:0", "2001:db8::1/0:0: invalid IPv6 address"),
        ("2001:db8::1/ffff::x", "2001:db8::1/ffff::x: invalid IPv6 address"),
        ("2001:db8::1/fffff::", "2001:db8::1/fffff::: Invalid IPv6 mask"),
    ],
)
def test_ipv6_parse_cidr_refuses_with_open_vswitchs_words(text: str, message: str) -> None:
    with pytest.raises(OvsParseError) as error:
        ipv6_parse_cidr(text)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("text", "mark"),
    [
        ("pkt_mark=16", 16),
        ("pkt_mark=0x10", 16),
        ("pkt_mark=010", 8),
        ("pkt_mark=-1", 0xFFFFFFFF),
        ("pkt_mark=5abc", 5),
        ("pkt_mark= 7", 7),
        ("pkt_mark=4294967297", 1),
        ("pkt_mark=", None),
        ("pkt_mark=0x", None),
        ("mark=5", None),
        ("1.2.3.4", None),
    ],
)
def test_scan_pkt_mark(text: str, mark: int | None) -> None:
    assert scan_pkt_mark(text) == mark


def test_route_prefixes_try_ipv4_then_ipv6() -> None:
    assert parse_route_prefix("1.1.2.92/24") == (IPv4Interface("1.1.2.92/24"), False)
    assert parse_route_prefix("2001:db8::/32") == (IPv6Interface("2001:db8::/32"), True)
    # An IPv4-mapped prefix is the IPv4 one, typed in IPv6.
    assert parse_route_prefix("::ffff:1.2.3.0/120") == (IPv4Interface("1.2.3.0/24"), True)
    assert parse_route_prefix("1.1.2.92/255.0.255.0") is None
    assert parse_route_prefix("foo") is None


# -- the table ------------------------------------------------------------------------


def _table(**addresses: str) -> RouteTable:
    table = RouteTable()
    for dev, text in addresses.items():
        table.set_device_addresses(dev, [ip_interface(a) for a in text.split()])
    return table


def test_a_route_takes_its_source_from_its_device() -> None:
    table = _table(br0="10.0.0.1/8 10.1.0.1/16 2001:db8::1/64", p1="192.0.2.1/24")
    # The longest mask whose subnet holds the destination.
    assert table.add_user(ip_network("10.1.5.0/24"), "br0").src == IPv4Address("10.1.0.1")
    assert table.add_user(ip_network("10.2.0.0/16"), "br0").src == IPv4Address("10.0.0.1")
    assert table.add_user(ip_network("2001:db8::/32"), "br0").src == IPv6Address("2001:db8::1")
    # None holds it: the gateway's subnet, else a refusal.
    route = table.add_user(ip_network("0.0.0.0/0"), "p1", IPv4Address("192.0.2.254"))
    assert (route.src, route.gateway) == (IPv4Address("192.0.2.1"), IPv4Address("192.0.2.254"))
    with pytest.raises(RouteError) as error:
        table.add_user(ip_network("198.51.100.0/24"), "p1", IPv4Address("203.0.113.1"))
    assert str(error.value) == "Error while inserting route."
    assert error.value.detail == "src addr not available for route 198.51.100.0"
    with pytest.raises(RouteError):
        table.add_user(ip_network("10.0.0.0/8"), "nosuchdev")


def test_the_address_as_typed_chooses_the_source() -> None:
    """``1.1.2.92/16`` is in 1.1.2.0/24 although 1.1.0.0 is not, as Open vSwitch sees it."""
    table = _table(br0="1.1.2.92/24")
    route = table.add_user(IPv4Interface("1.1.2.92/16"), "br0")
    assert route.prefix == IPv4Network("1.1.0.0/16")
    assert route.src == IPv4Address("1.1.2.92")
    with pytest.raises(RouteError):
        table.add_user(IPv4Network("1.1.0.0/16"), "br0")


def test_user_routes_beat_kernel_routes_up_to_32_bits_more_specific() -> None:
    table = _table(a="10.0.0.1/8", b="10.1.2.1/24", lo="10.1.2.3/32")
    table.add_cached(ip_network("10.1.2.0/24"), "b")
    assert table.lookup(IPv4Address("10.1.2.3")).dev == "b"  # type: ignore[union-attr]
    table.add_user(ip_network("10.0.0.0/8"), "a")
    assert table.lookup(IPv4Address("10.1.2.3")).dev == "a"  # type: ignore[union-attr]
    # A kernel local route is above both.
    table.add_cached(ip_network("10.1.2.3/32"), "lo", local=True)
    found = table.lookup(IPv4Address("10.1.2.3"))
    assert found is not None
    assert (found.dev, found.kind, found.local) == ("lo", "cached", True)


def test_a_mark_must_match_exactly() -> None:
    table = _table(br0="1.1.2.92/24")
    table.add_user(ip_network("1.1.2.0/24"), "br0", mark=1234)
    assert table.lookup(IPv4Address("1.1.2.1")) is None
    assert table.lookup(IPv4Address("1.1.2.1"), mark=1234) is not None
    assert not table.delete_user(ip_network("1.1.2.0/24"))
    assert table.delete_user(ip_network("1.1.2.0/24"), mark=1234)
    assert table.routes() == []


def test_a_source_address_must_be_the_switchs_own() -> None:
    table = _table(br0="1.1.2.92/24", eth0="192.0.2.2/24", lo="127.0.0.1/8")
    table.add_user(ip_network("1.1.2.0/24"), "br0")
    table.add_cached(ip_network("127.0.0.0/8"), "lo", local=True)
    table.add_cached(ip_network("198.51.100.0/24"), "eth0", IPv4Address("192.0.2.1"))
    dst = IPv4Address("1.1.2.88")
    # An address of a device (netdev-dummy/ip4addr's count, as in OVS 3.4+).
    found = table.lookup(dst, src=IPv4Address("192.0.2.2"))
    assert found is not None
    assert found.src == IPv4Address("192.0.2.2")
    # An address of a kernel local route (Open vSwitch 3.1's only way).
    found = table.lookup(dst, src=IPv4Address("127.5.5.5"))
    assert found is not None
    assert found.src == IPv4Address("127.5.5.5")
    # Anything else: no route.
    assert table.lookup(dst, src=IPv4Address("198.51.100.9")) is None
    assert table.lookup(dst, src=IPv4Address("1.1.2.93")) is None


def test_device_addresses_and_their_owners() -> None:
    table = _table(br0="1.1.2.92/24 2001:cafe::92/64")
    assert table.owner_of(IPv4Address("1.1.2.92")) == "br0"
    assert table.owner_of(IPv6Address("::ffff:1.1.2.92")) == "br0"
    assert table.owner_of(IPv6Address("2001:cafe::92")) == "br0"
    assert table.owner_of(IPv4Address("1.1.2.93")) is None
    assert table.source_address(IPv4Address("1.1.2.7"), "br0") == IPv4Address("1.1.2.92")
    assert table.source_address(IPv4Address("1.1.3.7"), "br0") is None
    version = table.version
    table.set_device_addresses("br0", table.device_addresses("br0"))
    assert table.version == version
    table.set_device_addresses("br0", [])
    assert table.version > version
    assert table.owner_of(IPv4Address("1.1.2.92")) is None
    assert table.devices() == []


def test_a_new_route_replaces_the_one_for_the_same_prefix_and_mark() -> None:
    table = _table(br0="1.1.2.92/24")
    table.add_user(ip_network("0.0.0.0/0"), "br0", IPv4Address("1.1.2.1"))
    table.add_user(ip_network("1.1.2.0/24"), "br0")
    table.add_user(ip_network("0.0.0.0/0"), "br0", IPv4Address("1.1.2.254"))
    assert table.show() == (
        "Route Table:\n"
        "User: 1.1.2.0/24 dev br0 SRC 1.1.2.92\n"
        "User: 0.0.0.0/0 dev br0 GW 1.1.2.254 SRC 1.1.2.92\n"
    )


def test_an_ipv4_mapped_prefix_is_the_ipv4_prefix() -> None:
    table = _table(br0="1.2.3.4/24")
    table.add_user(IPv6Interface("::ffff:1.2.3.0/120"), "br0")
    route = table.lookup(IPv4Address("1.2.3.9"))
    assert route is not None
    assert route.prefix == IPv4Network("1.2.3.0/24")
    assert table.delete_user(ip_network("1.2.3.0/24"))


def test_lookup_text() -> None:
    table = _table(br0="1.1.2.92/24", br1="2001:cafe::92/64")
    table.add_user(ip_network("1.1.2.0/24"), "br0")
    table.add_user(ip_network("::/0"), "br1", IPv6Address("2001:cafe::1"))
    route = table.lookup(IPv4Address("1.1.2.1"))
    assert route is not None
    assert route.gateway is None
    assert format_lookup(route) == "src 1.1.2.92\ngateway ::\ndev br0\n"
    route = table.lookup(IPv6Address("2001:db8::1"))
    assert route is not None
    assert format_lookup(route) == "src 2001:cafe::92\ngateway 2001:cafe::1\ndev br1\n"


# This machine's kernel routes and addresses when Open vSwitch 3.1 listed them
# (no --disable-system-route), with three user routes added among them.
KERNEL_ADDRESSES = {
    "lo": "127.0.0.1/8 ::1/128",
    "eth0": "192.0.2.2/24 fd00::2/64 fe80::fc:ff:fe00:1/64",
}
KERNEL_ROUTES = [
    ("0.0.0.0/0", "eth0", "192.0.2.1", False),
    ("192.0.2.0/24", "eth0", None, False),
    ("127.0.0.0/8", "lo", None, True),
    ("127.0.0.1/32", "lo", None, True),
    ("192.0.2.2/32", "eth0", None, True),
    ("fd00::/64", "eth0", None, False),
    ("fe80::/64", "eth0", None, False),
    ("::/0", "eth0", "fd00::1", False),
    ("::1/128", "lo", None, True),
    ("fd00::2/128", "eth0", None, True),
    ("fe80::fc:ff:fe00:1/128", "eth0", None, True),
    # Not a route Open vSwitch can take (no address of lo fits): skipped.
    ("10.9.0.0/16", "lo", None, False),
]
OVS_LISTING = """\
Route Table:
Cached: 127.0.0.1/32 dev lo SRC 127.0.0.1 local
Cached: 192.0.2.2/32 dev eth0 SRC 192.0.2.2 local
Cached: ::1/128 dev lo SRC ::1 local
Cached: fd00::2/128 dev eth0 SRC fd00::2 local
Cached: fe80::fc:ff:fe00:1/128 dev eth0 SRC fe80::fc:ff:fe00:1 local
User: ::1/128 dev lo SRC ::1
Cached: 127.0.0.0/8 dev lo SRC 127.0.0.1 local
User: 127.0.0.0/8 dev lo SRC 127.0.0.1
User: 127.1.0.0/16 dev lo SRC 127.0.0.1
Cached: 192.0.2.0/24 dev eth0 SRC 192.0.2.2
Cached: 0.0.0.0/0 dev eth0 GW 192.0.2.1 SRC 192.0.2.2
Cached: fd00::/64 dev eth0 SRC fd00::2
Cached: fe80::/64 dev eth0 SRC fe80::fc:ff:fe00:1
Cached: ::/0 dev eth0 GW fd00::1 SRC fd00::2
"""


def _kernel_table() -> RouteTable:
    table = _table(**KERNEL_ADDRESSES)
    table.replace_cached(
        KernelRoute(ip_network(dst), dev, ip_address(gw) if gw else None, local)
        for dst, dev, gw, local in KERNEL_ROUTES
    )
    return table


def test_the_listing_follows_open_vswitchs_classifier_order() -> None:
    table = _kernel_table()
    for prefix in ("127.0.0.0/8", "127.1.0.0/16", "::1/128"):
        table.add_user(ip_network(prefix), "lo")
    assert table.show() == OVS_LISTING


def test_kernel_routes_are_replaced_and_user_routes_stay() -> None:
    table = _kernel_table()
    table.add_user(ip_network("127.1.0.0/16"), "lo")
    version = table.version
    table.replace_cached([KernelRoute(ip_network("0.0.0.0/0"), "eth0", IPv4Address("192.0.2.9"))])
    assert table.version > version
    assert table.show() == (
        "Route Table:\n"
        "User: 127.1.0.0/16 dev lo SRC 127.0.0.1\n"
        "Cached: 0.0.0.0/0 dev eth0 GW 192.0.2.9 SRC 192.0.2.2\n"
    )
    # ovs/route/del removes user routes only.
    assert not table.delete_user(ip_network("0.0.0.0/0"))
    table.flush_cached()
    assert [r.kind for r in table.routes()] == ["user"]


def test_routes_as_values() -> None:
    table = _kernel_table()
    route = table.lookup(IPv6Address("2001:db8::1"))
    assert route is not None
    assert route.prefix == IPv6Network("::/0")
    assert (route.dev, route.gateway, route.src) == (
        "eth0",
        IPv6Address("fd00::1"),
        IPv6Address("fd00::2"),
    )
    assert (route.kind, route.local, route.mark, route.priority) == ("cached", False, 0, 0)


# -- what route_sync takes from the kernel ---------------------------------------------


class _Msg(dict[str, object]):
    """A stand-in for pyroute2's rtnetlink message: fields by key, attributes by name."""

    def __init__(self, attrs: dict[str, object], **fields: object) -> None:
        super().__init__(fields)
        self.attrs = attrs

    def get_attr(self, name: str) -> object:
        return self.attrs.get(name)


def _route(family: int, dst_len: int, rtype: int = 1, **attrs: object) -> _Msg:
    fields = {"family": family, "dst_len": dst_len, "table": 254, "type": rtype, "scope": 0}
    return _Msg(attrs, **fields)


def test_kernel_routes_are_filtered_as_open_vswitch_filters_them() -> None:
    v4, v6 = socket.AF_INET, socket.AF_INET6
    names = {1: "lo", 4: "eth0"}
    messages = [
        _route(v4, 0, RTA_OIF=4, RTA_GATEWAY="192.0.2.1", RTA_TABLE=254),
        _route(v4, 24, RTA_DST="192.0.2.0", RTA_OIF=4),
        _route(v4, 32, 2, RTA_DST="127.0.0.1", RTA_OIF=1, RTA_TABLE=255),
        _route(v4, 32, 3, RTA_DST="192.0.2.255", RTA_OIF=4, RTA_TABLE=255),  # broadcast
        _route(v4, 24, RTA_DST="198.51.100.0", RTA_OIF=4, RTA_TABLE=100),  # a table of its own
        _route(v4, 24, RTA_DST="203.0.113.0", RTA_OIF=9),  # a device gone
        _route(v4, 24, RTA_DST="203.0.113.0"),  # multipath: no output device
        _route(v6, 8, 5, RTA_DST="ff00::", RTA_OIF=4, RTA_TABLE=255),  # multicast
        _route(v6, 0, RTA_OIF=4, RTA_GATEWAY="fd00::1", RTA_MARK=7),
    ]
    assert kernel_routes(messages, names) == [
        KernelRoute(ip_network("0.0.0.0/0"), "eth0", IPv4Address("192.0.2.1")),
        KernelRoute(ip_network("192.0.2.0/24"), "eth0"),
        KernelRoute(ip_network("127.0.0.1/32"), "lo", local=True),
        KernelRoute(ip_network("::/0"), "eth0", IPv6Address("fd00::1"), mark=7),
    ]
    addresses = [
        _Msg(
            {"IFA_ADDRESS": "10.0.0.2", "IFA_LOCAL": "10.0.0.1"}, family=v4, index=4, prefixlen=32
        ),
        _Msg({"IFA_ADDRESS": "fd00::2"}, family=v6, index=4, prefixlen=64),
        _Msg({"IFA_ADDRESS": "127.0.0.1"}, family=v4, index=1, prefixlen=8),
        _Msg({"IFA_ADDRESS": "10.9.9.9"}, family=v4, index=9, prefixlen=8),
    ]
    assert kernel_addresses(addresses, names) == {
        "eth0": [IPv4Interface("10.0.0.1/32"), IPv6Interface("fd00::2/64")],
        "lo": [IPv4Interface("127.0.0.1/8")],
    }
