"""System tests: real kernels, real devices, inside namespaces the tests create."""

from tests.system.netns import lab

__all__ = ["lab"]
