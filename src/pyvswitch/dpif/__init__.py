"""dpif: the one datapath every bridge shares.

Pure: no I/O, no clock. It holds datapath ports, the exact-match cache and the
megaflow classifier; on a miss it calls back into translation (an upcall) and
installs the result; it executes datapath actions on frames.
"""
