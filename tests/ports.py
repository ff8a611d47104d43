"""Free loopback ports for the servers the tests start, shared by the service suites."""

from __future__ import annotations

import socket


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers bind: a port lingering in TIME_WAIT is usable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(start: int, span: int) -> int:
    """From ``start`` up, a port with ``span`` free ports from it (a concurrent run or a
    developer's own servers must not collide with ours)."""
    for port in range(start, start + 5000, max(span, 10)):
        if all(port_free(port + offset) for offset in range(span)):
            return port
    raise RuntimeError(f"no {span} free ports from {start}")
