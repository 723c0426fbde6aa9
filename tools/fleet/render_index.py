"""The render index (`.cache/render-index.json`), written by `fleet render`: per cluster, its render
key, the stats of its rendered folder, its input files and its cluster.yaml digest.

`fleet render` and `fleet diff` reuse a cluster's folder when it is current; `fleet lint
--changed` maps changed inputs to clusters with it. It only saves work: unreadable means empty.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .writer import unit_stats

INDEX = Path(".cache/render-index.json")


def read_json(root: Path, rel: Path) -> dict:
    """A JSON object the render keeps under .cache/; {} when absent or unreadable."""
    try:
        data = json.loads((root / rel).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(root: Path, rel: Path, data: dict) -> None:
    """Write it whole or not at all (a temporary file renamed over it); OSError when it cannot."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def load_index(root: Path) -> dict:
    return read_json(root, INDEX)


def is_current(index: dict, rendered: Path, cid: str, key: str) -> bool:
    """Whether `rendered/clusters/<cid>` is what a render with `key` wrote and untouched since."""
    entry = index.get(cid)
    return bool(isinstance(entry, dict) and entry.get("key") == key and entry.get("stats")
                and unit_stats(rendered, f"clusters/{cid}") == entry["stats"])
