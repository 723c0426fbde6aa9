"""Shared fixtures: the repo root, and a scratch copy of the example fleet tests may break."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INPUT_DIRS = ("base", "overlays", "regions", "clusters", "policies")


def shared_dir() -> Path:
    """The upstream reference data beside the repo (Flux CRDs, chart defaults)."""
    return Path(os.environ.get("FLEET_SHARED", REPO.parent / "shared")).resolve()


def require_shared(sub: str) -> Path:
    path = shared_dir() / sub
    if path.exists():
        return path
    message = f"{path} missing (the shared/ reference folder beside the repo)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def patch_components(root: Path, rel: str, components: dict) -> list[str]:
    """Add component patches to an input file (parsed and re-dumped, not text-replaced); its lines."""
    import yaml

    path = root / rel
    doc = yaml.safe_load(path.read_text())
    doc.setdefault("components", {}).update(components)
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    path.write_text(text)
    return text.splitlines()


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def fleet_copy(tmp_path: Path) -> Path:
    """A copy of the example fleet's inputs (and .yamllint.yaml) in a temporary repo root."""
    root = tmp_path / "fleet"
    root.mkdir()
    for name in INPUT_DIRS:
        if (REPO / name).exists():
            shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / ".yamllint.yaml", root / ".yamllint.yaml")
    return root


@pytest.fixture(scope="session")
def fleet():
    """The shipped example fleet's model (read-only)."""
    from fleet import model
    return model.load(REPO)


@pytest.fixture(scope="session")
def rendered_root(fleet, tmp_path_factory) -> Path:
    """The shipped inputs rendered through the library into a fresh tree (not the repo's rendered/)."""
    from fleet.render.fleet import render_fleet
    root = tmp_path_factory.mktemp("rendered-fleet")
    for rel, text in render_fleet(fleet).items():
        path = root / "rendered" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
