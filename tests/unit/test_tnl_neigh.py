"""The tunnel neighbour cache: aging as Open vSwitch 3.1 ages, its listing and its parsers."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from pyvswitch.ofproto.tnl_neigh import (
    DEFAULT_AGING,
    SHOW_HEADER,
    NeighCache,
    eth_addr_from_string,
    parse_aging,
    parse_neigh_ip,
)

MAC1 = bytes.fromhex("001122334455")
MAC2 = bytes.fromhex("f8bc124434b6")
IP1 = IPv4Address("1.1.2.88")


def test_an_entry_lives_the_aging_time_after_its_last_use() -> None:
    cache = NeighCache()
    assert cache.aging == DEFAULT_AGING == 900
    cache.set("br0", IP1, MAC1, now=100.0)
    assert cache.lookup("br0", IP1, now=999.0) == MAC1
    # The lookup at 999 s kept it alive until 1899 s.
    assert cache.lookup("br0", IP1, now=1898.0) == MAC1
    assert cache.lookup("br0", IP1, now=2798.0) is None
    assert cache.lookup("br1", IP1, now=1900.0) is None


def test_an_expired_entry_is_stale_until_the_periodic_run_removes_it() -> None:
    cache = NeighCache(aging=10)
    cache.set("br0", IP1, MAC1, now=0.0)
    assert cache.lookup("br0", IP1, now=10.0) is None
    assert cache.show(now=10.0) == (
        SHOW_HEADER
        + "1.1.2.88                                      00:11:22:33:44:55   br0 STALE\n"
    )
    version = cache.version
    assert cache.run(now=10.0)
    assert cache.version > version
    assert cache.show(now=10.0) == SHOW_HEADER
    assert not cache.run(now=11.0)


def test_setting_again_refreshes_and_a_new_mac_replaces() -> None:
    cache = NeighCache(aging=10)
    cache.set("br0", IP1, MAC1, now=0.0)
    version = cache.version
    cache.set("br0", IP1, MAC1, now=8.0)
    assert cache.version == version  # nothing a lookup sees changed
    assert cache.lookup("br0", IP1, now=17.0) == MAC1
    cache.set("br0", IP1, MAC2, now=17.0)
    assert cache.version > version
    assert cache.lookup("br0", IP1, now=18.0) == MAC2
    assert len(cache.entries()) == 1


def test_a_shorter_aging_time_shortens_entries() -> None:
    cache = NeighCache()
    cache.set("br0", IP1, MAC1, now=0.0)
    cache.set_aging(10, now=100.0)
    assert cache.lookup("br0", IP1, now=109.0) == MAC1
    assert cache.lookup("br0", IP1, now=119.0) is None
    # A longer one does not lengthen them.
    cache.set("br0", IP1, MAC1, now=200.0)
    cache.set_aging(3600, now=200.0)
    assert cache.lookup("br0", IP1, now=210.0) is None
    for bad in (0, 3601):
        with pytest.raises(ValueError, match=r"outside 1\.\.3600"):
            cache.set_aging(bad, now=0.0)


def test_the_listing() -> None:
    cache = NeighCache()
    cache.set("br-phy", IPv4Address("1.1.2.88"), MAC1, now=0.0)
    cache.set("br-phy", IPv6Address("2001:cafe::88"), MAC2, now=0.0)
    # An IPv4-mapped address is the IPv4 address.
    cache.set("br1", IPv6Address("::ffff:1.2.3.4"), MAC1, now=0.0)
    assert cache.lookup("br1", IPv4Address("1.2.3.4"), now=1.0) == MAC1
    # Bridge names are kept in IFNAMSIZ bytes, as in Open vSwitch.
    cache.set("a-very-long-bridge-name", IPv6Address("fe80::1"), MAC2, now=0.0)
    assert cache.lookup("a-very-long-bri", IPv6Address("fe80::1"), now=1.0) == MAC2
    assert cache.show(now=1.0) == (
        "IP                                            MAC                 Bridge\n"
        "==========================================================================\n"
        "1.1.2.88                                      00:11:22:33:44:55   br-phy\n"
        "2001:cafe::88                                 f8:bc:12:44:34:b6   br-phy\n"
        "1.2.3.4                                       00:11:22:33:44:55   br1\n"
        "fe80::1                                       f8:bc:12:44:34:b6   a-very-long-bri\n"
    )
    entry = cache.entries()[2]
    assert (entry.bridge, entry.ip, entry.mac) == ("br1", IPv4Address("1.2.3.4"), MAC1)


def test_flush_all_or_one_bridge() -> None:
    cache = NeighCache()
    cache.set("br0", IP1, MAC1, now=0.0)
    cache.set("br1", IP1, MAC1, now=0.0)
    assert cache.flush("br0")
    assert cache.lookup("br0", IP1, now=1.0) is None
    assert cache.lookup("br1", IP1, now=1.0) == MAC1
    assert cache.flush()
    assert not cache.flush()
    assert cache.entries() == []


def test_snooping_learns_senders_but_not_a_zero_mac() -> None:
    cache = NeighCache()
    assert cache.snoop_arp("br0", IP1, MAC1, now=0.0)
    assert not cache.snoop_arp("br0", IPv4Address("1.1.2.89"), bytes(6), now=0.0)
    assert cache.snoop_nd("br0", IPv6Address("2001:cafe::88"), MAC2, now=0.0)
    assert not cache.snoop_nd("br0", IPv6Address("2001:cafe::89"), bytes(6), now=0.0)
    assert [e.ip for e in cache.entries()] == [IP1, IPv6Address("2001:cafe::88")]
    with pytest.raises(ValueError, match="6 bytes"):
        cache.set("br0", IP1, b"\x00", now=0.0)


@pytest.mark.parametrize(
    ("text", "mac"),
    [
        ("00:11:22:33:44:55", "001122334455"),
        ("0:1:2:3:4:5", "000102030405"),
        ("0x1:2:3:4:5:6", "010203040506"),
        ("100:2:3:4:5:-1", "0002030405ff"),
        ("AA:bb:CC:dd:EE:ff", "aabbccddeeff"),
        ("00:11:22:33:44", None),
        ("1:2:3:4:5:6x", None),
        ("1:2:3:4:5:6:7", None),
        ("1-2-3-4-5-6", None),
        ("", None),
    ],
)
def test_eth_addr_from_string(text: str, mac: str | None) -> None:
    assert eth_addr_from_string(text) == (None if mac is None else bytes.fromhex(mac))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1", 1),
        ("3600", 3600),
        ("10abc", 10),
        ("+7", 7),
        (" 5", 5),
        ("4294967297", 1),
        ("0", None),
        ("3601", None),
        ("-5", None),
        ("abc", None),
        ("", None),
    ],
)
def test_parse_aging(text: str, seconds: int | None) -> None:
    assert parse_aging(text) == seconds


@pytest.mark.parametrize(
    ("text", "ip"),
    [
        ("1.1.2.88", IPv4Address("1.1.2.88")),
        ("2001:cafe::88", IPv6Address("2001:cafe::88")),
        ("::ffff:1.2.3.4", IPv4Address("1.2.3.4")),
        ("01.1.2.88", None),
        ("1.1.2", None),
        ("localhost", None),
        ("2001:db8::x", None),
        ("fe80::1%eth0", None),
    ],
)
def test_parse_neigh_ip(text: str, ip: IPv4Address | IPv6Address | None) -> None:
    assert parse_neigh_ip(text) == ip
