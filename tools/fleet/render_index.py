"""The render index (`.cache/render-index.json`), written by `fleet render`: per cluster, its render
key, the stats of its rendered folder, its input files and its cluster.yaml digest.

`fleet render` and `fleet diff` reuse a cluster's folder when it is current; `fleet lint
--changed` maps changed inputs to clusters with it. It only saves work: unreadable means empty.
"""
from __future__ import annotations

import json
from pathlib import Path

from .writer import unit_stats

INDEX = Path(".cache/render-index.json")


def load_index(root: Path) -> dict:
    try:
        index = json.loads((root / INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def is_current(index: dict, rendered: Path, cid: str, key: str) -> bool:
    """Whether `rendered/clusters/<cid>` is what a render with `key` wrote and untouched since."""
    entry = index.get(cid)
    return bool(isinstance(entry, dict) and entry.get("key") == key and entry.get("stats")
                and unit_stats(rendered, f"clusters/{cid}") == entry["stats"])
