"""Locate the binaries tests run against.

Upstream servers and tools (vmagent, vmalert, victoria-metrics, prometheus, promtool) are the
pinned builds of tools/upstream.lock in .cache/bin (`make setup` builds them); kubectl comes from
Debian (tools/apt-packages.txt). CI builds and installs all of them, so there a missing binary
is a broken setup and must fail the run; on a developer machine without them the test is skipped.
"""
from __future__ import annotations

import os
import shutil

import pytest

from fleet import upstream


def require_binary(name: str) -> str:
    """Return the path of `name`; fail under CI=true, skip otherwise, when it is missing."""
    if name in upstream.pinned():
        try:
            return upstream.binary(name)
        except upstream.MissingUpstream as exc:
            message = str(exc)
    else:
        path = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
        if path:
            return path
        message = f"binary {name!r} not found on PATH (CI installs it from tools/apt-packages.txt)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
