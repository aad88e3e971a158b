"""Shared test configuration.

Tests are in tiers (docs/testing.md): unit tests of the pure layers run
everywhere; tests marked ``netns`` need root and network namespaces; tests
marked ``ovs`` need Open vSwitch's programs; ``slow`` marks long runs.
"""

from __future__ import annotations

import logging

from hypothesis import HealthCheck, settings

# scapy warns about routes and MAC resolution when building frames on a
# machine with no route; tests set every address explicitly, so the warnings
# are noise.
logging.getLogger("scapy").setLevel(logging.ERROR)

settings.register_profile("default", deadline=None)
settings.register_profile(
    "slow", deadline=None, max_examples=20000, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("default")
