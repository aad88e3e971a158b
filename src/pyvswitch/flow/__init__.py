"""Flow layer: the flow key, its extraction from frames, matches, and text forms.

Pure: nothing here performs I/O or reads a clock.

A flow key is one Python ``int`` holding every field of Open vSwitch's
``struct flow`` at a fixed bit position (:mod:`pyvswitch.flow.layout`). A match
is a pair of such ints, value and mask, so a classifier lookup is ``key & mask``
and a dict probe. :class:`Flow` is the readable, mutable view of one key used by
translation, tests and display.
"""

from pyvswitch.flow.extract import extract_key, extract_keys
from pyvswitch.flow.flow import Flow, flow_extract
from pyvswitch.flow.layout import FIELDS, StorageField

__all__ = [
    "FIELDS",
    "Flow",
    "StorageField",
    "extract_key",
    "extract_keys",
    "flow_extract",
]
