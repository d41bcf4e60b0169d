"""Request counters in the Prometheus text exposition format (no client library)."""

from __future__ import annotations

import threading
from collections import defaultdict


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class ServerMetrics:
    """Requests by route and status, and bytes received and sent by route."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.bytes_in: dict[str, int] = defaultdict(int)
        self.bytes_out: dict[str, int] = defaultdict(int)
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, received: int, sent: int,
                seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            self.bytes_in[route] += received
            self.bytes_out[route] += sent
            self.seconds[(method, route)] += seconds

    def render(self) -> str:
        """The counters as Prometheus text format 0.0.4."""
        with self._lock:
            out = [
                "# HELP deltavault_http_requests_total HTTP requests by method, route and status.",
                "# TYPE deltavault_http_requests_total counter",
            ]
            for (method, route, status), n in sorted(self.requests.items()):
                out.append(f'deltavault_http_requests_total{{method="{method}",'
                           f'route="{_label(route)}",status="{status}"}} {n}')
            out += ["# HELP deltavault_http_request_seconds_total Time spent serving requests.",
                    "# TYPE deltavault_http_request_seconds_total counter"]
            for (method, route), s in sorted(self.seconds.items()):
                out.append(f'deltavault_http_request_seconds_total{{method="{method}",'
                           f'route="{_label(route)}"}} {s:.6f}')
            for name, table, help_text in (
                ("deltavault_http_received_bytes_total", self.bytes_in, "Request body bytes."),
                ("deltavault_http_sent_bytes_total", self.bytes_out, "Response body bytes."),
            ):
                out += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
                for route, n in sorted(table.items()):
                    out.append(f'{name}{{route="{_label(route)}"}} {n}')
            return "\n".join(out) + "\n"
