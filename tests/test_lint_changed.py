"""`fleet lint --changed` never misses a finding a full lint gives: seeded random one-file changes
(some introduce errors) to a git copy of the example fleet, each compared with full lints of the
changed tree and of the base."""
from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleet import checks
from fleet.cli import cli
from fleet.commands.lint import plan_changed

from conftest import REPO, require_shared

COPIED = ("base", "overlays", "regions", "clusters", "policies", "tests/rules", "tests/relabel", "rendered")
_CLUSTERS = re.compile(r"; cluster\(s\): (.+)$")
_NAMED = re.compile(r"\bcluster ([a-z0-9][a-z0-9-]*[a-z0-9])\b")


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def _lint(root: Path, flags: list[str], *extra: str) -> tuple[int, list[dict]]:
    result = CliRunner().invoke(cli, ["lint", "--root", str(root), "--format", "json", *flags, *extra])
    if result.exit_code not in (0, 1):
        return result.exit_code, []
    return result.exit_code, json.loads(result.stdout)["findings"]


def _cluster_of(finding: dict) -> str | None:
    if finding["details"].get("cluster"):
        return finding["details"]["cluster"]
    parts = finding["file"].split("/")
    if parts[0] == "clusters" and len(parts) > 2:
        return parts[1]
    if parts[:2] == ["rendered", "clusters"] and len(parts) > 3:
        return parts[2]
    named = _NAMED.search(finding["message"])
    return named.group(1) if named else None


def expand(findings: list[dict]) -> set[tuple]:
    """One (check, severity, file, line, col, message, cluster) per cluster a finding is about: a
    finding listing clusters ("…; cluster(s): a, b") is about each; cluster None: about none."""
    out = set()
    for f in findings:
        head = (f["check"], f["severity"], f["file"], f["line"], f["col"])
        listed = _CLUSTERS.search(f["message"])
        if listed:
            message = f["message"][:listed.start()]
            for name in listed.group(1).split(", "):
                out.add((*head, message, None if name == "all clusters" else name))
        else:
            out.add((*head, f["message"], _cluster_of(f)))
    return out


@pytest.fixture(scope="module")
def base_fleet(tmp_path_factory) -> tuple[Path, list[str], set[tuple]]:
    """The example fleet rendered and committed on `main`, with its full-lint findings."""
    root = tmp_path_factory.mktemp("changed") / "fleet"
    for name in COPIED:
        shutil.copytree(REPO / name, root / name)
    for name in (".yamllint.yaml", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    flags = [a for sub in ("crds/flux", "crds/gateway/standard", "crds/envoy-gateway")
             for a in ("--crds", str(require_shared(sub)))] + ["--charts", str(require_shared("charts"))]
    assert CliRunner().invoke(cli, ["render", "--root", str(root)]).exit_code == 0
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "base")
    code, findings = _lint(root, flags)
    assert code in (0, 1)
    return root, flags, expand(findings)


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def _replicas(n: int) -> str:
    return f"components:\n  envoy-gateway:\n    values:\n      deployment:\n        replicas: {n}\n"


def _mutations(rng: random.Random, root: Path) -> list:
    """One-file changes: (description, apply(root), re-render afterwards). All but the replica
    count 3 and the move to staging introduce findings (asserted, so the comparison has teeth)."""
    clusters = sorted(p.name for p in (root / "clusters").iterdir() if (p / "cluster.yaml").is_file()
                      and "controlPlane" not in (p / "cluster.yaml").read_text())
    cid = rng.choice(clusters)
    cluster = root / "clusters" / cid / "cluster.yaml"
    n = rng.choice([1, 3])
    return [
        (f"{cid}: envoy-gateway replicas {n}", lambda: _append(cluster, _replicas(n)), True),
        (f"{cid}: vmagent extraArgs adds a remote write", lambda: _append(
            cluster, "components:\n  vmagent:\n    values:\n      extraArgs:\n"
                     "        remoteWrite.url: https://metrics.example.com/api/v1/write\n"), True),
        (f"{cid}: bad indentation", lambda: _replace(cluster, "shuttle:\n  tokenSecretName", "shuttle:\n    tokenSecretName"), True),
        ("base envoy-gateway replicas 1", lambda: _replace(root / "base/components/envoy-gateway/values.yaml",
                                                           "replicas: 2", "replicas: 1"), True),
        ("staging overlay envoy-gateway replicas 1", lambda: _append(
            root / "overlays/staging/overlay.yaml",
            "  envoy-gateway:\n    values:\n      deployment:\n        replicas: 1\n"), True),
        ("recording rule reads a label no job sends", lambda: _replace(
            root / "base/rules/recording/20-envoy.yaml", 'job="envoy"', 'job="envoy-typo"'), True),
        (f"{cid}: hand edit of a rendered HelmRelease (old Flux API)", lambda: _replace(
            root / f"rendered/clusters/{cid}/stages/01-gateway/envoy-gateway.yaml",
            "helm.toolkit.fluxcd.io/v2\n", "helm.toolkit.fluxcd.io/v2beta1\n"), False),
        (f"new cluster beside {cid}", lambda: _new_cluster(root, cid), True),
        (f"{cid}: own customer relabel drops job", lambda: _own_relabel(cluster), True),
        ("base customer relabel: a keep with a replacement it ignores", lambda: _append(
            root / "base/relabel/customer.yaml",
            "- action: keep\n  source_labels: [job]\n  regex: .+\n  replacement: unused\n"), True),
        ("base dataplane custom resources beside the release installing their CRDs", lambda: _replace(
            root / "base/components/gateway-dataplane/component.yaml", "afterReleases: true", "afterReleases: false"),
         True),
        (f"{cid}: hand edit of the rendered HTTPRoute policy (route naming no longer checked)", lambda: _replace(
            root / f"rendered/clusters/{cid}/stages/01-gateway/custom-resources/gateway-dataplane.yaml",
            "ref.name == object.metadata.name", "true"), False),
        (f"{cid}: moved to staging", lambda: _replace(cluster, "environment: production", "environment: staging")
         if "environment: production" in cluster.read_text() else _replace(cluster, "environment: staging",
                                                                            "environment: production"), True),
    ]


def _own_relabel(cluster: Path) -> None:
    """The cluster's own customer remote-write rules gain a labeldrop of `job` (relabel-lint, relabel-vs-rules)."""
    rule = "    - action: labeldrop\n      regex: job\n"
    if "relabel:\n  customer:\n" in cluster.read_text():
        _replace(cluster, "relabel:\n  customer:\n", "relabel:\n  customer:\n" + rule)
    else:
        _append(cluster, "relabel:\n  customer:\n" + rule)


def _new_cluster(root: Path, like: str) -> None:
    new = f"{like}-b"
    (root / "clusters" / new).mkdir()
    text = (root / "clusters" / like / "cluster.yaml").read_text().replace(f"id: {like}\n", f"id: {new}\n")
    (root / "clusters" / new / "cluster.yaml").write_text(text + _replicas(1))


@pytest.mark.parametrize("seed", range(13))
def test_changed_gives_every_finding_a_full_lint_gives_in_its_scope(base_fleet, tmp_path: Path, seed: int) -> None:
    base_root, flags, base = base_fleet
    root = tmp_path / "fleet"
    shutil.copytree(base_root, root, symlinks=True)
    rng = random.Random(seed)
    mutations = _mutations(rng, root)
    what, apply, rerender = mutations[seed % len(mutations)]
    apply()
    if rerender:
        assert CliRunner().invoke(cli, ["render", "--root", str(root)]).exit_code in (0, 2), what
    full_code, full_list = _lint(root, flags)
    changed_code, changed_list = _lint(root, flags, "--changed")
    assert changed_code == full_code or (full_code, changed_code) == (1, 0) and \
        not (expand(full_list) - base), what
    full, changed = expand(full_list), expand(changed_list)
    if "replicas 3" not in what and "moved to" not in what:
        assert full - base, f"{what}: meant to introduce a finding"
    assert changed <= full, (what, changed - full)
    assert full - base <= changed, (what, full - base - changed)
    # Within what --changed linted, it says exactly what the full lint says.
    to_run, plan, _, _ = plan_changed(root, None, checks.discover())
    for check in to_run:
        how = plan.get(check.name)
        if how is None:
            assert {e for e in changed if e[0] == check.name} == {e for e in full if e[0] == check.name}, (what, check.name)
        elif how[0] == "clusters":
            assert {e for e in changed if e[0] == check.name and e[6] is not None} == \
                {e for e in full if e[0] == check.name and e[6] in how[1]}, (what, check.name)
        else:
            assert {e for e in changed if e[0] == check.name} == \
                {e for e in full if e[0] == check.name and e[2] in how[1]}, (what, check.name)


def _plan(root: Path) -> dict:
    to_run, plan, model_clusters, _ = plan_changed(root, None, checks.discover())
    return {c.name: plan.get(c.name, "all") for c in to_run}, model_clusters


def test_a_change_nothing_reads_runs_no_check_and_the_toolchain_runs_all(base_fleet, tmp_path: Path) -> None:
    root = tmp_path / "fleet"
    shutil.copytree(base_fleet[0], root, symlinks=True)
    (root / "README.md").write_text("notes\n")
    (root / "tests/test_new.py").write_text("def test_x(): pass\n")
    assert _plan(root) == ({}, set())
    (root / "tools").mkdir()
    (root / "tools/bench.py").write_text("print()\n")
    plan, model_clusters = _plan(root)
    assert set(plan.values()) == {"all"} and set(plan) == {c.name for c in checks.discover()}
    assert model_clusters is None


def test_without_a_render_index_a_region_change_lints_every_cluster(base_fleet, tmp_path: Path) -> None:
    root = tmp_path / "fleet"
    shutil.copytree(base_fleet[0], root, symlinks=True)
    _append(root / "regions/fra1/region.yaml", "# reviewed\n")
    narrowed, _ = _plan(root)
    fra1 = {p.name for p in (root / "clusters").iterdir() if p.name.startswith("fra1")}
    assert narrowed["gdpr"] == ("clusters", frozenset(fra1))   # the index names fra1's clusters
    (root / ".cache/render-index.json").unlink()
    everywhere, _ = _plan(root)
    assert everywhere["gdpr"] == "all"


def test_relabel_vs_rules_runs_for_a_cluster_change_only_when_it_touches_what_vmagent_relabels_with(
        base_fleet, tmp_path: Path) -> None:
    """Every cluster's pipelines feed its findings, so it runs whole: not for a replica count, but
    for the cluster's own relabel patches or vmagent values (`@relabel-inputs`)."""
    root = tmp_path / "fleet"
    shutil.copytree(base_fleet[0], root, symlinks=True)
    cluster = root / "clusters/fra1-prod-01/cluster.yaml"
    _append(cluster, _replicas(3))
    plan, _ = _plan(root)
    assert "relabel-vs-rules" not in plan and "gdpr" in plan
    _own_relabel(cluster)
    plan, _ = _plan(root)
    assert plan.get("relabel-vs-rules") == "all"
    shutil.rmtree(root)
    shutil.copytree(base_fleet[0], root, symlinks=True)
    _append(cluster, "components:\n  vmagent:\n    values:\n      resources:\n        limits:\n          memory: 3Gi\n")
    plan, _ = _plan(root)
    assert plan.get("relabel-vs-rules") == "all"
