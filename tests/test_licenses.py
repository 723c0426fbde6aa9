"""licenses: each component declares an allowed license; no Enterprise images."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fleet import model
from fleet.checks import CheckContext, licenses
from fleet.cli import cli
from fleet.errors import InputErrors

from conftest import patch_components

COMPONENT = "base/components/alloy/component.yaml"
CLUSTER = "clusters/nyc3-prod-01/cluster.yaml"


def _findings(root: Path) -> list:
    ctx = CheckContext(root=root, fleet=model.load(root), rendered=root / "rendered", options={})
    return list(licenses.check(ctx))


def _set_license(root: Path, value: str | None) -> int:
    """Rewrite alloy's `license:` line (or drop it); the line number it has."""
    path = root / COMPONENT
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("license:"))
    if value is None:
        del lines[index]
    else:
        lines[index] = f"license: {value}"
    path.write_text("\n".join(lines) + "\n")
    return index + 1


def test_shipped_components_declare_allowed_licenses(repo_root: Path) -> None:
    assert _findings(repo_root) == []
    fleet = model.load(repo_root)
    assert all(doc.data.get("license") for doc in fleet.raw.components.values())


REFUSED = {
    "BUSL-1.1": "Business Source License",
    "SSPL-1.0": "Server Side Public License",
    "AGPL-3.0-only": "network copyleft",
    "GPL-2.0-only": "outside the allowed set",
    "Apache-2.0 AND AGPL-3.0-or-later": "network copyleft",
}


@pytest.mark.parametrize("spdx", sorted(REFUSED))
def test_refused_license_is_reported_at_its_line(fleet_copy: Path, spdx: str) -> None:
    line = _set_license(fleet_copy, spdx)
    found = _findings(fleet_copy)
    assert len(found) == 1 and REFUSED[spdx] in found[0].message, found
    assert (found[0].source.file, found[0].source.line) == (COMPONENT, line)


@pytest.mark.parametrize("spdx", ["MIT", "Apache-2.0 AND MIT", "BUSL-1.1 OR Apache-2.0", "MPL-2.0"])
def test_allowed_expression_passes(fleet_copy: Path, spdx: str) -> None:
    _set_license(fleet_copy, spdx)
    assert _findings(fleet_copy) == []


def test_missing_license_is_a_finding_on_the_component(fleet_copy: Path) -> None:
    _set_license(fleet_copy, None)
    found = _findings(fleet_copy)
    assert len(found) == 1 and "no license declared" in found[0].message
    assert found[0].source.file == COMPONENT


def test_license_that_is_not_spdx_is_bad_input(fleet_copy: Path) -> None:
    _set_license(fleet_copy, "Apache 2")
    with pytest.raises(InputErrors) as exc:
        model.load(fleet_copy)
    assert COMPONENT in str(exc.value)


@pytest.mark.parametrize("image,key", [({"variant": "enterprise"}, "variant"),
                                       ({"tag": "v1.150.0-enterprise"}, "tag")])
def test_enterprise_image_is_reported_at_the_value(fleet_copy: Path, image: dict, key: str) -> None:
    lines = patch_components(fleet_copy, CLUSTER, {"vmagent": {"values": {"image": image}}})
    found = _findings(fleet_copy)
    assert len(found) == 1 and "Enterprise build" in found[0].message, found
    want = next(i + 1 for i, line in enumerate(lines) if line.strip().startswith(f"{key}:"))
    assert (found[0].source.file, found[0].source.line) == (CLUSTER, want)


def test_lint_fails_on_a_bsl_component(fleet_copy: Path) -> None:
    line = _set_license(fleet_copy, "BUSL-1.1")
    assert CliRunner().invoke(cli, ["render", "--root", str(fleet_copy)]).exit_code == 0
    result = CliRunner().invoke(cli, ["lint", "--root", str(fleet_copy), "--only", "licenses"])
    assert result.exit_code == 1 and f"{COMPONENT}:{line}:" in result.output, result.output
