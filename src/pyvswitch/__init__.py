"""pyvswitch: a userspace virtual switch in Python.

The package is layered as Open vSwitch is (see docs/design.md): the pure
layers ``packet``, ``flow``, ``ofproto`` and ``dpif`` take data and return data;
the I/O lives in ``netdev``, ``vswitchd`` and the command-line tools.
"""

__version__ = "0.1.0"
