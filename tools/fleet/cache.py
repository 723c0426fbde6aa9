"""A small content-addressed cache for check results (in memory, and on disk under .cache/).

Checks whose result is a pure function of some bytes (a file's text, a folder's files) key
their results by a hash of those bytes, so an unchanged cluster costs a dictionary lookup.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable


def digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8") if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def code_key(*files: str | Path, packages: tuple[str, ...] = ()) -> str:
    """Digest of the source files (and installed package versions) a cached result was computed
    by: new code, new keys (.cache/ outlives a rebuilt .venv)."""
    from importlib import metadata

    versions = [f"{p}=={metadata.version(p)}" for p in packages]
    return digest(*(Path(f).read_bytes() for f in sorted(map(str, files))), *versions)


def by_identity(memo: dict, kind: Any, obj: Any, compute: Callable[[], Any]) -> Any:
    """compute(), once per `kind` and object (by identity) in a run's `memo` (a lint run's
    ctx.cache): for results derived from one shared model object. The entry keeps `obj`
    alive, so no other object can take its id while the entry lives."""
    key = (kind, id(obj))
    hit = memo.get(key)
    if hit is None or hit[0] is not obj:
        hit = memo[key] = (obj, compute())
    return hit[1]


def parsed_once(folder: Path | None, text: str, parse: Callable[[str], Any]) -> Any:
    """`parse(text)`, kept in `folder` as JSON by the text's digest when JSON gives back exactly
    the same value (loading JSON is many times faster than building the objects from YAML).
    For large files read by every lint (CRDs, chart defaults); `folder` None: just parse."""
    if folder is None or os.environ.get("FLEET_NO_CACHE") == "1":
        return parse(text)
    path = folder / f"{digest(text)}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    value = parse(text)
    try:
        dumped = json.dumps(value)
        if json.loads(dumped) == value:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(dumped, encoding="utf-8")
            os.replace(tmp, path)
    except (TypeError, ValueError, OSError):
        pass  # not JSON-exact, or not writable: parsed each time
    return value


class ResultCache:
    """JSON-serialisable results by key; one file per namespace, written once at the end."""

    def __init__(self, root: Path, namespace: str):
        self.path = root / ".cache" / f"{namespace}.json"
        self.enabled = os.environ.get("FLEET_NO_CACHE") != "1"
        self._data: dict[str, Any] = {}
        self._dirty = False
        if self.enabled and self.path.exists():
            try:
                self._data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._data = {}

    def get_or_compute(self, key: str, compute: Callable[[], Any]) -> Any:
        if key in self._data:
            return self._data[key]
        value = compute()
        self._data[key] = value
        self._dirty = True
        return value

    def get(self, key: str) -> Any:
        return self._data.get(key) if self.enabled else None

    def put(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._dirty = True

    def save(self) -> None:
        """Write the results for next time. A cache only saves work: when it cannot be written
        (read-only checkout, full disk) that is a warning on stderr, never a failed run."""
        if not (self.enabled and self._dirty):
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._data, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            print(f"fleet: warning: cannot write the cache {self.path}: {exc.strerror or exc}; "
                  "results are correct, the next run just recomputes them", file=sys.stderr)
        self._dirty = False
