"""README's "Upstream binaries" table names every binary of tools/upstream.lock at its module and version."""
from __future__ import annotations

from pathlib import Path

from fleet import upstream

README = Path(__file__).resolve().parents[1] / "README.md"


def table_rows() -> dict[str, str]:
    """First cell → module cell of the section's table, `same` resolved to the row above."""
    section = README.read_text(encoding="utf-8").split("\n## Upstream binaries\n", 1)[1].split("\n## ", 1)[0]
    rows, module = {}, ""
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| ") or len(cells) < 3 or cells[0] == "binary":
            continue
        module = module if cells[1] == "same" else cells[1]
        rows[cells[0]] = module
    return rows


def test_every_pinned_binary_is_listed_with_its_version():
    rows = table_rows()
    for name, entry in upstream.pinned().items():
        assert name in rows, f"README's Upstream binaries table has no row for {name}"
        assert f"`{entry.module}` {entry.version}" in rows[name], (name, rows[name])


def test_every_listed_binary_is_pinned_or_says_where_it_comes_from():
    extra = set(table_rows()) - set(upstream.pinned())
    assert all("not in the lock" in name for name in extra), extra
