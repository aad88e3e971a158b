"""ofproto: bridges, OpenFlow tables, NORMAL, and translation (xlate).

Pure: no I/O, no clock (time is passed in as ``now``, in seconds).
"""
