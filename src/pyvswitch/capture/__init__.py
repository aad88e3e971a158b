"""Capture: tcpdump's filter language, compiled by libpcap, for capturing on any port.

This package is on the I/O side of the purity rule: it loads libpcap through
ctypes. What runs per packet is pure and lives in the packet layer: the
classic BPF interpreter (:mod:`pyvswitch.packet.bpf`) and the pcapng writer
(:mod:`pyvswitch.packet.pcapng`).
"""
