"""The upstream binaries the checks and tests run, at the versions the fleet deploys.

`tools/upstream.lock` names each binary, its Go module, version and package; `make setup`
(tools/build-upstream.sh) builds them into `.cache/bin/<name>-<version>`. Checks ask here for a
binary by name, so a check never runs whatever happens to be on PATH (Debian's vmagent is
years older than the one the clusters run).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "tools" / "upstream.lock"
BIN_DIR = REPO / ".cache" / "bin"


class MissingUpstream(RuntimeError):
    """A pinned binary is not built (run `make setup`)."""


@dataclass(frozen=True)
class Upstream:
    name: str
    module: str
    version: str
    package: str
    tags: str
    checks: str

    @property
    def path(self) -> Path:
        return BIN_DIR / f"{self.name}-{self.version}"


@cache
def pinned() -> dict[str, Upstream]:
    """Every binary of the lock file by name."""
    entries = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, module, version, package, tags, checks = line.split(None, 5)
        entries[name] = Upstream(name, module, version, package, "" if tags == "-" else tags, checks)
    return entries


def version(name: str) -> str:
    return pinned()[name].version


def binary(name: str) -> str:
    """Path of the pinned build of `name`; MissingUpstream when it has not been built."""
    entry = pinned().get(name)
    if entry is None:
        raise MissingUpstream(f"{name} is not in {LOCK.relative_to(REPO)}")
    if not entry.path.is_file():
        raise MissingUpstream(f"{name} {entry.version} is not built ({entry.path.relative_to(REPO)}): "
                              "run `make setup` (tools/build-upstream.sh)")
    return str(entry.path)
