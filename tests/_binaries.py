"""Locate the Debian binaries tests run against (vmagent, victoria-metrics, prometheus, ...).

CI installs them from tools/apt-packages.txt, so there a missing binary is a broken CI image
and must fail the run; on a developer machine without them the test is skipped instead.
"""
from __future__ import annotations

import os
import shutil

import pytest


def require_binary(name: str) -> str:
    """Return the path of `name`; fail under CI=true, skip otherwise, when it is missing."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if path:
        return path
    message = f"binary {name!r} not found on PATH (CI installs it from tools/apt-packages.txt)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
