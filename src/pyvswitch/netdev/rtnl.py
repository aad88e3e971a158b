"""rtnetlink requests through pyroute2, safe to make from inside an asyncio loop.

pyroute2's synchronous ``IPRoute`` drives an asyncio loop of its own and
raises RuntimeError ("This event loop is already running") when the calling
thread already runs one, which is exactly where pvs-vswitchd configures its
devices. :func:`rtnl_request` runs such a request in a helper thread there
(a thread has no running loop and shares the caller's network namespace) and
directly everywhere else.

pyroute2 is imported on first use: importing it takes about 0.3 s, and most
uses of pyvswitch (dummy ports, the command-line tools) never need it.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

#: Seconds a netlink request may take when it runs in a helper thread.
RTNL_TIMEOUT = 10.0

_T = TypeVar("_T")


def netlink_error() -> type[Exception]:
    """pyroute2's NetlinkError (the kernel refused a request), imported on demand."""
    from pyroute2.netlink.exceptions import (  # type: ignore[import-untyped, unused-ignore]  # noqa: PLC0415
        NetlinkError,
    )

    error: type[Exception] = NetlinkError
    return error


def rtnl_errors() -> tuple[type[Exception], ...]:
    """What a request can raise.

    The kernel's refusal, a socket error, a timeout in the helper thread, or
    pyroute2's own event loop complaining.
    """
    return (netlink_error(), OSError, RuntimeError, TimeoutError)


def rtnl_request(request: Callable[[Any], _T]) -> _T:
    """Run ``request(ipr)`` with a fresh pyroute2 ``IPRoute`` and return its result.

    A fresh IPRoute per request avoids pyroute2's per-thread state; callers
    cache what they read, so requests are rare.
    """
    from pyroute2 import IPRoute  # type: ignore[import-untyped, unused-ignore]  # noqa: PLC0415

    def run() -> _T:
        with IPRoute() as ipr:
            return request(ipr)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pvs-rtnl")
    try:
        return pool.submit(run).result(timeout=RTNL_TIMEOUT)
    finally:
        pool.shutdown(wait=False)
