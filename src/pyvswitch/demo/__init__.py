"""The demo behind ``./run demo``: the reference document's compute node, as it grows."""
