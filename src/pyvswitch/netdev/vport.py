"""The tunnel providers ``vxlan``, ``gre`` and ``geneve``: configuration only, as in OVS.

A tunnel port has no device of its own and moves no packets by itself. Like
Open vSwitch's userspace datapath ("native tunnelling"), pyvswitch builds and
strips the outer headers in the datapath, and every tunnel of one type and
UDP port shares one datapath port (``vxlan_sys_4789``, ``genev_sys_6081``,
``gre_sys``). What a provider here does is read its options exactly as OVS
3.1's ``set_tunnel_config()`` does (the parsing itself is the pure
:func:`pyvswitch.ofproto.tnl_config.parse_tunnel_options`), hold the result in
:attr:`TunnelNetdev.tunnel` and report it back as OVS does
(:meth:`TunnelNetdev.get_config`, which ``dpif/show`` prints).

Problems OVS only warns about (an unknown option, a bad ``tos``...) do not
stop the port: they are left in :attr:`TunnelNetdev.warnings` for the owner
to log as OVS does, one warning from module ``netdev_vport`` whose lines are
joined by newlines. A refusal raises :class:`TunnelOptionError`, whose text
is the Interface ``error`` column, word for word.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, ClassVar

from pyvswitch.netdev.base import Netdev, NetdevOptionError
from pyvswitch.netdev.registry import register_provider
from pyvswitch.ofproto.tnl_config import (
    ACCEPTED_OPTIONS,
    DEFAULT_DST_PORT,
    DPIF_PORT_PREFIX,
    TunnelConfig,
    TunnelConfigError,
    parse_tunnel_options,
    tunnel_get_config,
)

if TYPE_CHECKING:
    from collections.abc import Mapping


class TunnelOptionError(NetdevOptionError):
    """OVS refuses the tunnel's options; ``str()`` is the ``error`` column.

    ``log_lines`` is what OVS logs first (module ``netdev_vport``, WARN, the
    lines joined by newlines; empty when it logs nothing there), and
    ``strerror`` the reason in its second warning, from module ``netdev``:
    ``NAME: could not set configuration (STRERROR)``.
    """

    def __init__(self, message: str, log_lines: tuple[str, ...], strerror: str) -> None:
        super().__init__(message)
        self.log_lines = log_lines
        self.strerror = strerror


class TunnelNetdev(Netdev):
    """What the three tunnel types share; subclasses set :attr:`type`."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        #: The configuration in force; None until the first successful configure().
        self.tunnel: TunnelConfig | None = None
        #: The lines OVS logged as a warning at the last successful configure().
        self.warnings: tuple[str, ...] = ()
        #: The options that configure() ignored as unknown, in OVS's order.
        self.unknown_options: tuple[str, ...] = ()

    def configure(self, options: Mapping[str, str]) -> None:
        """Read ``options`` as OVS does; raise :class:`TunnelOptionError` when it would refuse."""
        try:
            parsed = parse_tunnel_options(self.name, self.type, options)
        except TunnelConfigError as exc:
            raise TunnelOptionError(str(exc), exc.lines, "Invalid argument") from None
        self._check(parsed.config, parsed.warnings)
        self.tunnel = parsed.config
        self.warnings = parsed.warnings
        self.unknown_options = parsed.unknown
        self._config = dict(options)

    def _check(self, config: TunnelConfig, warnings: tuple[str, ...]) -> None:
        """A check that needs more than this port's options (VXLAN's, below)."""

    def get_config(self) -> dict[str, str]:
        """The configuration as OVS reports it back (``get_tunnel_config()``).

        Defaults are left out and equal keys shown as ``key``; ``dpif/show``
        prints these sorted (see :func:`pyvswitch.ofproto.tnl_config.format_dpif_show`).
        """
        return tunnel_get_config(self.tunnel) if self.tunnel is not None else {}

    @property
    def dpif_port(self) -> str:
        """The name of the datapath port this tunnel shares with its kind."""
        if self.tunnel is not None:
            return self.tunnel.dpif_port
        port = DEFAULT_DST_PORT[self.type]
        return DPIF_PORT_PREFIX[self.type] + ("" if port is None else f"_{port}")


@register_provider
class VxlanNetdev(TunnelNetdev):
    """A VXLAN tunnel (type ``vxlan``, UDP port 4789 unless ``dst_port`` says otherwise).

    OVS refuses a port that would put VXLAN-GBP (``exts=gbp``) and plain
    VXLAN on one UDP port, and it counts every VXLAN netdev for that, which
    includes the one it opens, unconfigured, for the shared datapath port
    itself (``vxlan_sys_4790``: such a name gives the netdev its port). So
    in OVS 3.1 once a datapath port exists no second GBP tunnel may join it.
    To behave the same, the owner opens a VxlanNetdev named after the shared
    datapath port when it creates that port, and closes it with the port.
    """

    type: ClassVar[str] = "vxlan"
    options: ClassVar[frozenset[str]] = ACCEPTED_OPTIONS["vxlan"]

    # OVS counts every VXLAN netdev by (UDP port, GBP extension) so that GBP
    # and plain VXLAN never share a port: both would be received by the one
    # datapath port and could not be told apart.
    _users: ClassVar[collections.Counter[tuple[int, bool]]] = collections.Counter()

    def __init__(self, name: str) -> None:
        super().__init__(name)
        # A netdev named after a datapath port ("vxlan_sys_4790") starts with
        # that port, as in OVS; any other starts with the default.
        prefix = DPIF_PORT_PREFIX["vxlan"]
        port = 0
        if name.startswith(prefix) and len(name) > len(prefix) + 1:
            digits = name[len(prefix) + 1 :]
            count = len(digits) - len(digits.lstrip("0123456789"))
            port = int(digits[:count]) & 0xFFFF if count else 0
        self._gbp_key = (port or 4789, False)
        self._users[self._gbp_key] += 1

    def _check(self, config: TunnelConfig, warnings: tuple[str, ...]) -> None:
        new = (config.dst_port or 0, "gbp" in config.exts)
        old = self._gbp_key
        opposite = (new[0], not new[1])
        if old == new:
            # The default port is checked even when nothing changes, since a
            # port starts out there.
            clash = old[0] == 4789 and self._users[opposite] > 0
        elif old[0] == new[0]:
            clash = self._users[old] > 1
        else:
            clash = self._users[opposite] > 0
        if clash:
            reason = (
                f"{self.name}: VXLAN-GBP, and non-VXLAN-GBP tunnels can't be "
                "configured on the same dst_port"
            )
            lines = (*warnings, reason)
            raise TunnelOptionError("\n".join(lines), lines, "File exists")
        if new != old:
            self._release()
            self._gbp_key = new
            self._users[new] += 1

    def _release(self) -> None:
        self._users[self._gbp_key] -= 1
        if self._users[self._gbp_key] <= 0:
            del self._users[self._gbp_key]

    def close(self) -> None:
        """Stop counting this port towards its UDP port's GBP setting."""
        if not self.closed:
            self._release()
        super().close()


@register_provider
class GreNetdev(TunnelNetdev):
    """A GRE tunnel (type ``gre``: Ethernet over GRE, RFC 2784/2890)."""

    type: ClassVar[str] = "gre"
    options: ClassVar[frozenset[str]] = ACCEPTED_OPTIONS["gre"]


@register_provider
class GeneveNetdev(TunnelNetdev):
    """A Geneve tunnel (type ``geneve``, UDP port 6081 unless ``dst_port`` says otherwise)."""

    type: ClassVar[str] = "geneve"
    options: ClassVar[frozenset[str]] = ACCEPTED_OPTIONS["geneve"]
