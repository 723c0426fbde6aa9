"""Real servers on loopback (VictoriaMetrics, vmagent, vmauth, ...): each on a free 127.0.0.1
port with its own log file, readiness bounded in time, and killed when stopped.

The `rules-vm` lint check replays rule tests in one (fleet.rules.vmengine); the differential and
end-to-end tests start theirs with the same class (tests/differential/servers.py).
"""
from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A running binary; `url` is its http://127.0.0.1:PORT base."""

    def __init__(self, name: str, args: list[str], port: int, log: Path):
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._log_file, stderr=subprocess.STDOUT)

    def wait_ready(self, path: str = "/health", timeout: float = STARTUP_TIMEOUT) -> None:
        """Return once `path` answers; RuntimeError if the process exits first, TimeoutError
        after `timeout` seconds (both with the end of its log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=1.0):
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        self._log_file.flush()
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - kill is not ignorable
                pass
        self._log_file.close()
