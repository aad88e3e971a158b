"""Conversions between address text and wire bytes.

Errors are ``ValueError`` whose message names the bad text, so that callers
parsing user input (flow strings, options) can pass it on unchanged.
"""

from __future__ import annotations

import ipaddress

_HEX = "0123456789abcdef"


def mac_to_str(mac: bytes) -> str:
    """Format 6 bytes as ``aa:bb:cc:dd:ee:ff``, the way Open vSwitch prints MACs."""
    return ":".join(f"{b:02x}" for b in mac)


def mac_to_bytes(text: str) -> bytes:
    """Parse ``aa:bb:cc:dd:ee:ff`` (one or two hex digits per octet) into 6 bytes."""
    parts = text.split(":")
    if len(parts) != 6 or not all(
        0 < len(p) <= 2 and all(c in _HEX for c in p.lower()) for p in parts
    ):
        raise ValueError(f"{text}: invalid Ethernet address")
    return bytes(int(p, 16) for p in parts)


def ip4_to_str(addr: bytes) -> str:
    """Format 4 bytes as dotted decimal."""
    return f"{addr[0]}.{addr[1]}.{addr[2]}.{addr[3]}"


def ip4_to_bytes(text: str) -> bytes:
    """Parse dotted decimal (exactly four decimal octets) into 4 bytes."""
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts):
        raise ValueError(f"{text}: invalid IP address")
    return bytes(int(p) for p in parts)


def ip6_to_str(addr: bytes) -> str:
    """Format 16 bytes as glibc's ``inet_ntop()`` does, which is what OVS prints.

    That is RFC 5952's form (lower case, the first longest run of two or more
    zero groups as ``::``), except that IPv4-compatible (``::a.b.c.d``) and
    IPv4-mapped (``::ffff:a.b.c.d``) addresses end in dotted decimal, where
    Python's ``ipaddress`` would print ``::a0b:c0d``.
    """
    words = [(addr[i] << 8) | addr[i + 1] for i in range(0, 16, 2)]
    best_start, best_len = -1, 0
    i = 0
    while i < 8:
        if words[i] == 0:
            j = i
            while j < 8 and words[j] == 0:
                j += 1
            if j - i > best_len:
                best_start, best_len = i, j - i
            i = j
        else:
            i += 1
    if best_len < 2:
        best_start, best_len = -1, 0
    if best_start == 0 and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF)):
        prefix = "::" if best_len == 6 else "::ffff:"
        return prefix + ip4_to_str(addr[12:16])
    if best_start < 0:
        return ":".join(f"{w:x}" for w in words)
    head = ":".join(f"{w:x}" for w in words[:best_start])
    tail = ":".join(f"{w:x}" for w in words[best_start + best_len :])
    return f"{head}::{tail}"


def ip6_to_bytes(text: str) -> bytes:
    """Parse any textual IPv6 address into 16 bytes."""
    try:
        return ipaddress.IPv6Address(text).packed
    except ValueError:
        raise ValueError(f"{text}: invalid IPv6 address") from None
