"""Providers by type string, and devices by name, reference-counted as in OVS.

``netdev_open(name, type, options)`` returns the one device with that name,
creating and configuring it on first use; each open takes a reference and
``netdev_close()`` gives one back, closing the device with the last one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pyvswitch.netdev.base import Netdev, NetdevError

if TYPE_CHECKING:
    from collections.abc import Mapping

_PROVIDERS: dict[str, type[Netdev]] = {}
# Providers that live in their own module and are imported on first use, so
# that opening a dummy port never imports socket or tap code.
_LAZY: dict[str, str] = {
    "dummy": "pyvswitch.netdev.dummy",
    "patch": "pyvswitch.netdev.patch",
    "system": "pyvswitch.netdev.system",
    "tap": "pyvswitch.netdev.tap",
    "internal": "pyvswitch.netdev.tap",
    "vxlan": "pyvswitch.netdev.vport",
    "gre": "pyvswitch.netdev.vport",
    "geneve": "pyvswitch.netdev.vport",
}
_DEVICES: dict[str, tuple[Netdev, int]] = {}


def register_provider(cls: type[Netdev]) -> type[Netdev]:
    """Register a provider class under ``cls.type`` (usable as a class decorator)."""
    if not cls.type:
        raise ValueError(f"{cls.__name__} has no type string")
    existing = _PROVIDERS.get(cls.type)
    if existing is not None and existing is not cls:
        raise ValueError(f"netdev type {cls.type!r} is already provided by {existing.__name__}")
    _PROVIDERS[cls.type] = cls
    return cls


def provider(type_: str) -> type[Netdev]:
    """The provider class for ``type_``; NetdevError when there is none."""
    if type_ not in _PROVIDERS and type_ in _LAZY:
        importlib.import_module(_LAZY[type_])
    try:
        return _PROVIDERS[type_]
    except KeyError:
        known = ", ".join(sorted(set(_PROVIDERS) | set(_LAZY)))
        raise NetdevError(f"unknown interface type {type_!r} (known: {known})") from None


def netdev_open(
    name: str, type_: str = "system", options: Mapping[str, str] | None = None
) -> Netdev:
    """Open (or create) device ``name`` of type ``type_`` and apply ``options``.

    Opening a name that is already open returns the same device with one more
    reference; ``options``, when given, are applied again. Opening it with
    another type is an error, as in OVS.
    """
    if name in _DEVICES:
        dev, refs = _DEVICES[name]
        if dev.type != type_:
            raise NetdevError(f"{name}: already open as type {dev.type!r}, not {type_!r}")
        if options is not None:
            dev.configure(options)
        _DEVICES[name] = (dev, refs + 1)
        return dev
    dev = provider(type_)(name)
    try:
        dev.configure(options or {})
    except BaseException:
        dev.close()
        raise
    _DEVICES[name] = (dev, 1)
    return dev


def netdev_close(dev: Netdev) -> None:
    """Give back one reference; the last one closes the device."""
    entry = _DEVICES.get(dev.name)
    if entry is None or entry[0] is not dev:
        dev.close()
        return
    refs = entry[1] - 1
    if refs:
        _DEVICES[dev.name] = (dev, refs)
    else:
        del _DEVICES[dev.name]
        dev.close()


def open_devices() -> dict[str, Netdev]:
    """The devices currently open, by name."""
    return {name: dev for name, (dev, _) in _DEVICES.items()}


def references(name: str) -> int:
    """How many references device ``name`` has (0 when it is not open)."""
    return _DEVICES[name][1] if name in _DEVICES else 0
