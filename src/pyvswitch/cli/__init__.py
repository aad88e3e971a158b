"""Command-line tools (``pvs-*``) that talk to pyvswitch the way Open vSwitch's tools do."""
