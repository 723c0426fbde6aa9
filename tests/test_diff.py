"""`fleet diff`: a git repo holding a copy of the example fleet, a one-line change in base/, and
what a reviewer must see: the change once, grouped across the clusters it touches, and the
telemetry diff naming the label, the job, the destination and the GDPR verdict."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import INPUT_DIRS, REPO
from fleet.cli import cli
from fleet.diff import formats
from fleet.diff.compare import DiffReport, TelemetryGroup, diff
from fleet.diff.grouping import Change, Group, group_changes
from fleet.diff.telemetry import REGION_VM, DestinationChange, JobLabels, Names, describe
from fleet.relabel.regexlang import Lang
from fleet.diff.worktree import Base, temporary_worktree

PLATFORM = "base/relabel/platform.yaml"
GATE_LINE = "  regex: project_id|service_id|workspace_id|label_starform_io_.+|exported_.+\n"
#: A rule the fixture's base commit adds to the GDPR gate: pod names of two jobs stay home.
POD_RULE = textwrap.dedent("""
    # Pod names stay home for these jobs.
    - action: replace
      source_labels: [job]
      regex: kube-state-metrics|shuttle
      target_label: pod
      replacement: ""
    """)


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), "-c", "user.name=fleet-test", "-c", "user.email=t@example.org",
                           *args], capture_output=True, text=True, check=True)
    return done.stdout


def _make_repo(root: Path) -> Path:
    """The example fleet's inputs (plus the pod rule) committed on `main` of a new repository."""
    root.mkdir()
    for name in INPUT_DIRS:
        shutil.copytree(REPO / name, root / name)
    (root / PLATFORM).write_text((root / PLATFORM).read_text() + POD_RULE)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "base")
    return root


def _clusters(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "clusters").iterdir() if (p / "cluster.yaml").exists())


def _edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert text.count(old) == 1, f"{rel}: {old!r} must occur once"
    path.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def gate_change(tmp_path_factory) -> tuple[Path, DiffReport]:
    """One line of base/: `project_id` leaves the GDPR gate's labeldrop."""
    root = _make_repo(tmp_path_factory.mktemp("diff") / "fleet")
    _edit(root, PLATFORM, GATE_LINE, GATE_LINE.replace("project_id|", ""))
    return root, diff(root, None)


def test_one_line_base_change_is_shown_once_grouped_across_every_cluster(gate_change):
    root, report = gate_change
    assert report.changed and report.base.commit == _git(root, "rev-parse", "HEAD").strip()
    assert len(report.groups) == 1
    group = report.groups[0]
    assert (group.scope, group.change.path, group.change.status) == ("cluster", "stages/03-telemetry/config.alloy",
                                                                     "modified")
    assert group.units == _clusters(root)
    removed = [line for line in group.shown.splitlines() if line.startswith("-")]
    added = [line for line in group.shown.splitlines() if line.startswith("+")]
    assert len(removed) == len(added) == 1 and "project_id" in removed[0] and "project_id" not in added[0]
    text = formats.to_text(report)
    assert text.count("regex         = \"service_id|workspace_id") == 1  # the hunk once, not per cluster
    assert f"the same change in {len(_clusters(root))} clusters" in text


def test_telemetry_diff_names_label_jobs_destination_and_new_gdpr_finding(gate_change):
    root, report = gate_change
    grafana = [t for t in report.telemetry if t.change.destination == "grafana-cloud"]
    assert sorted(u for t in grafana for u in t.units) == _clusters(root)
    for t in grafana:
        assert t.change.gdpr_before == () and t.change.gdpr_new == ["forbidden label 'project_id' can reach Grafana Cloud"]
        (labels,) = t.change.labels
        assert labels.added == Names(("project_id",)) and labels.removed.empty
        assert {"kube-state-metrics", "shuttle", "node-exporter"} <= set(labels.jobs)
    # Starbase's jobs keep only the labels they list (a labelkeep before the gate): no project_id.
    control = next(t for t in grafana if "nyc3-control-01" in t.units)
    assert "starbase-api" not in control.change.labels[0].jobs
    assert not any(t.change.destination == REGION_VM for t in report.telemetry)  # vmagent untouched
    text = formats.to_text(report)
    assert "`project_id` label now reaches Grafana Cloud from jobs" in text
    assert "GDPR verdict for Grafana Cloud: clean → 1 finding" in text


def test_json_report_keys_are_the_documented_schema(gate_change):
    _, report = gate_change
    data = json.loads(formats.to_json(report))
    assert list(data) == ["schema", "base", "head", "summary", "telemetry", "changes"]
    assert data["schema"] == formats.SCHEMA
    assert list(data["base"]) == ["ref", "commit"] and list(data["head"]) == ["commit", "dirty"]
    assert list(data["summary"]) == ["changed", "files", "clusters", "regions", "fleet", "changes", "telemetry",
                                     "gdpr_new", "gdpr_resolved"]
    assert data["summary"]["gdpr_new"] == len(data["telemetry"]) and data["summary"]["changes"] == 1
    for t in data["telemetry"]:
        assert list(t) == ["scope", "units", "destination", "title", "jobs", "labels", "gdpr", "sentences"]
        assert list(t["jobs"]) == ["added", "removed"]
        assert list(t["gdpr"]) == ["before", "after", "new", "resolved"]
        for labels in t["labels"]:
            assert list(labels) == ["jobs", "added", "removed"]
            assert labels["added"] == {"names": ["project_id"]}
    (change,) = data["changes"]
    assert list(change) == ["scope", "units", "path", "object", "status", "exception", "diff", "lines"]
    assert data["head"]["dirty"] is True


def test_pod_label_now_reaches_grafana_cloud_from_kube_state_metrics(tmp_path):
    root = _make_repo(tmp_path / "fleet")
    _edit(root, PLATFORM, "  regex: kube-state-metrics|shuttle\n", "  regex: shuttle\n")
    report = diff(root, "main")
    assert [g.units for g in report.groups] == [_clusters(root)]
    changes = {t.change for t in report.telemetry}
    assert len(changes) == 1  # customer and control-plane clusters: the same change, one group
    (change,) = changes
    assert change.destination == "grafana-cloud" and change.gdpr_new == change.gdpr_resolved == []
    assert change.labels == (JobLabels(("kube-state-metrics",), Names(("pod",)), Names(())),)
    assert sorted(report.telemetry[0].units) == _clusters(root)
    assert "`pod` label now reaches Grafana Cloud from job kube-state-metrics" in formats.to_text(report)


def test_values_change_groups_clusters_and_names_the_exception(tmp_path):
    """A base values change, overridden in one cluster: the same change in the others, the
    overriding cluster as an exception; no telemetry change (vmagent's rules are untouched)."""
    root = _make_repo(tmp_path / "fleet")
    values = "base/components/vmagent/values.yaml"
    text = (root / values).read_text()
    assert "cpu: 100m" in text
    _edit(root, values, "cpu: 100m", "cpu: 200m")
    special = "nyc3-prod-02"  # already patches vmagent's memory limit; now its cpu request too
    _edit(root, f"clusters/{special}/cluster.yaml", "          memory: 3Gi\n",
          "          memory: 3Gi\n        requests:\n          cpu: 300m\n")
    full = tmp_path / "diff.json"
    result = CliRunner().invoke(cli, ["diff", "--root", str(root), "--format", "json", "--output", str(full)])
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert json.loads(full.read_text()) == data
    vmagent = [c for c in data["changes"] if c["path"] == "stages/03-telemetry/vmagent.yaml"]
    assert [c["exception"] for c in vmagent] == [False, True]
    assert vmagent[0]["object"] == "HelmRelease starform-metrics/vmagent"
    assert vmagent[0]["units"] == [c for c in _clusters(root) if c != special]
    assert vmagent[1]["units"] == [special] and "+        cpu: 300m" in vmagent[1]["diff"]
    assert "+        cpu: 200m" in vmagent[0]["diff"]
    assert data["telemetry"] == []


def test_no_change_exits_0_and_leaves_no_worktree(tmp_path):
    root = _make_repo(tmp_path / "fleet")
    before = _git(root, "worktree", "list")
    result = CliRunner().invoke(cli, ["diff", "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert "No change to rendered/." in result.output
    assert _git(root, "worktree", "list") == before


def test_unknown_ref_is_bad_input(tmp_path):
    root = _make_repo(tmp_path / "fleet")
    result = CliRunner().invoke(cli, ["diff", "--root", str(root), "--base", "no-such-branch"])
    assert result.exit_code == 2
    assert "unknown git ref 'no-such-branch'" in result.output


def test_base_that_does_not_render_is_bad_input_and_cleaned_up(tmp_path):
    root = _make_repo(tmp_path / "fleet")
    (root / "clusters" / "nyc3-prod-01" / "cluster.yaml").write_text("id: [unclosed\n")
    _git(root, "commit", "-qam", "broken")
    _git(root, "revert", "--no-edit", "HEAD")
    before = _git(root, "worktree", "list")
    result = CliRunner().invoke(cli, ["diff", "--root", str(root), "--base", "HEAD~1"])
    assert result.exit_code == 2
    assert "cannot render the base HEAD~1" in result.output and "nyc3-prod-01/cluster.yaml" in result.output
    assert _git(root, "worktree", "list") == before


def test_worktree_is_removed_on_sigterm(tmp_path):
    """SIGTERM while the temporary worktree exists: the process ends, the worktree is gone."""
    root = _make_repo(tmp_path / "fleet")
    commit = _git(root, "rev-parse", "HEAD").strip()
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        from pathlib import Path
        from fleet.diff.worktree import temporary_worktree
        with temporary_worktree(Path({str(root)!r}), {commit!r}) as path:
            print(path, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "Interrupted: SIGTERM" in proc.stderr
    path = Path(proc.stdout.strip())
    assert path.name == "base" and not path.parent.exists()
    assert str(path) not in _git(root, "worktree", "list")


def test_worktree_is_removed_when_the_block_fails(tmp_path):
    root = _make_repo(tmp_path / "fleet")
    with pytest.raises(KeyboardInterrupt):
        with temporary_worktree(root, _git(root, "rev-parse", "HEAD").strip()) as path:
            assert (path / PLATFORM).is_file()
            raise KeyboardInterrupt
    assert not path.parent.exists() and str(path) not in _git(root, "worktree", "list")


# -- formats without git


def _huge_report(clusters: int = 1200) -> DiffReport:
    """Every cluster with its own large change, and a telemetry change per cluster."""
    groups = []
    for i in range(clusters):
        diff_text = "\n".join(f"-old line {j} of cluster {i}\n+new line {j} of cluster {i}" for j in range(60))
        groups.append(Group("cluster", Change(f"stages/file-{i}.yaml", "", "modified", diff_text), [f"c{i:04d}"],
                            diff_text))
    change = DestinationChange("grafana-cloud", (), (), (JobLabels(("kube-state-metrics",), Names(("pod",)),
                                                                   Names(())),), (), ("forbidden label x",))
    telemetry = [TelemetryGroup("cluster", change, [f"c{i:04d}" for i in range(clusters)])]
    return DiffReport(Base("main", "a" * 40), {"commit": "b" * 40, "dirty": False}, groups, telemetry, clusters)


def test_markdown_stays_under_githubs_limit_and_points_at_the_full_report():
    report = _huge_report()
    full = formats.to_markdown(report, limit=10**9)
    assert len(full) > 10 * formats.GITHUB_COMMENT_LIMIT
    comment = formats.to_markdown(report, full_report="diff-full.md")
    assert len(comment) <= formats.GITHUB_COMMENT_LIMIT
    assert comment.startswith(full[:full.index("### Changes")])  # summary and telemetry first, whole
    assert "`pod` label now reaches Grafana Cloud from job kube-state-metrics" in comment
    assert "**Truncated**" in comment and "`diff-full.md`" in comment
    assert comment.count("<details>") == comment.count("</details>") > 0
    assert "Truncated" not in full


def test_markdown_fence_cannot_be_closed_by_the_diff():
    group = Group("fleet", Change("platform/alerts/x.yaml", "", "modified", "+ ```\n+ ````"), [""], "+ ```\n+ ````")
    report = DiffReport(Base("main", "a" * 40), {"commit": "b" * 40, "dirty": False}, [group], [], 1)
    out = formats.to_markdown(report)
    assert "`````diff\n" in out


def test_same_hunk_naming_each_cluster_is_one_change():
    before = {f"clusters/{c}/a.txt": f"x\nname {c}\ny\n".encode() for c in ("one", "two")}
    after = {f"clusters/{c}/a.txt": f"x\nname {c}\ny\nz {c}\n".encode() for c in ("one", "two")}
    after["clusters/three/a.txt"] = b"new\n"
    groups = group_changes(before, after)
    assert [(g.units, g.change.status) for g in groups] == [(["one", "two"], "modified"), (["three"], "added")]
    assert groups[0].change.diff == "@@\n+z <cluster>"
    assert groups[0].shown.splitlines()[-2:] == [" y", "+z <cluster>"]


def test_regional_outputs_group_across_regions_with_the_slug_abstracted():
    before = {f"regions/{r}/vector/vector.yaml": f"sink: ch.{r}.internal\nbuffer: 1\n".encode() for r in ("fra1", "nyc3")}
    after = {f"regions/{r}/vector/vector.yaml": f"sink: ch.{r}.internal\nbuffer: 2\n".encode() for r in ("fra1", "nyc3")}
    (group,) = group_changes(before, after)
    assert (group.scope, group.units, group.change.path) == ("region", ["fra1", "nyc3"], "vector/vector.yaml")
    assert "sink: ch.<region>.internal" in group.shown


def test_infinitely_many_names_read_as_a_prefix_and_an_example():
    names = describe(Lang.from_re2("label_starform_io_.+"))
    assert (names.members, names.prefix) == (None, "label_starform_io_")
    assert names.example.startswith("label_starform_io_") and len(names.example) > len("label_starform_io_")
    change = DestinationChange("grafana-cloud", (), (), (JobLabels(("shuttle",), names, Names(())),), (), ())
    (sentence,) = formats.telemetry_sentences(change)
    assert sentence.startswith("labels starting with `label_starform_io_` (infinitely many names, e.g. `label_st")
    assert sentence.endswith(") now reach Grafana Cloud from job shuttle")
    assert describe(Lang.literal("pod") | Lang.literal("namespace")) == Names(("namespace", "pod"))


def test_forked_workers_inside_the_worktree_block_end_quietly(tmp_path):
    """A fork pool (the render's) ends its workers with SIGTERM: they must die as before, not
    raise the parent's Interrupted."""
    root = _make_repo(tmp_path / "fleet")
    commit = _git(root, "rev-parse", "HEAD").strip()
    script = textwrap.dedent(f"""
        import multiprocessing
        from pathlib import Path
        from fleet.diff.worktree import temporary_worktree
        with temporary_worktree(Path({str(root)!r}), {commit!r}):
            with multiprocessing.get_context("fork").Pool(2) as pool:
                assert pool.map(abs, [-1, -2]) == [1, 2]
        print("done")
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout.strip()) == (0, "done") and "Traceback" not in proc.stderr, proc.stderr


def test_bad_input_in_the_working_tree_is_exit_2_at_its_line_and_cleaned_up(tmp_path):
    root = _make_repo(tmp_path / "fleet")
    (root / "clusters" / "nyc3-prod-02" / "cluster.yaml").write_text("id: nyc3-prod-02\nregion: [\n")
    before = _git(root, "worktree", "list")
    result = CliRunner().invoke(cli, ["diff", "--root", str(root)])
    assert result.exit_code == 2
    assert "clusters/nyc3-prod-02/cluster.yaml:" in result.output
    assert _git(root, "worktree", "list") == before


def test_rendering_here_leaves_out_unchanged_clusters_and_agrees_with_refs_own_render(tmp_path, monkeypatch):
    """Same toolchain on both sides: one process renders both and skips clusters whose render key
    did not change. The report equals the one of REF's own `fleet render` in the worktree."""
    import fleet.diff.compare as compare
    from fleet.render import fleet as render_fleet_module

    root = _make_repo(tmp_path / "fleet")
    _edit(root, "clusters/nyc3-prod-02/cluster.yaml", "replicas: 4", "replicas: 5")
    rendered: list[set] = []
    original = render_fleet_module.render_fleet

    def counting(fleet, only=None, reuse=None):
        rendered.append(set(fleet.clusters) if only is None else set(only))
        return original(fleet, only=only, reuse=reuse)

    monkeypatch.setattr(render_fleet_module, "render_fleet", counting)
    here = diff(root, None)
    # the working tree, then the base: the cluster, and the control plane that probes its load balancer
    assert rendered == [{"nyc3-prod-02", "nyc3-control-01"}] * 2
    monkeypatch.setattr(compare, "same_toolchain", lambda *_: False)
    own = diff(root, None)
    assert [(g.scope, g.change, g.units) for g in here.groups] == [(g.scope, g.change, g.units) for g in own.groups]
    assert [g.units for g in here.groups] == [["nyc3-prod-02"]] and here.files == own.files == 1
    assert here.telemetry == own.telemetry == []


def test_regional_gate_change_names_the_droplet_jobs(tmp_path):
    """The regional tier's droplets (alloy/<droplet>.alloy, targets written inline) are grouped
    across regions like clusters: a job leaving the keep and a label leaving the labeldrop."""
    root = _make_repo(tmp_path / "fleet")
    regional = "base/relabel/regional.yaml"
    _edit(root, regional, "regex: clickhouse|victoriametrics|vector|customer-rules\n", "regex: clickhouse|vector|customer-rules\n")
    _edit(root, regional, "regex: project_id|", "regex: ")
    report = diff(root, None)
    regions = sorted(p.name for p in (root / "regions").iterdir())
    assert {g.scope for g in report.groups} == {"region"} and all(g.units == regions for g in report.groups)
    (t,) = report.telemetry
    assert (t.scope, t.units, t.change.destination) == ("region", regions, "grafana-cloud")
    assert t.change.jobs_removed == ("victoriametrics",) and t.change.jobs_added == ()
    assert t.change.labels == (JobLabels(("clickhouse", "customer-rules", "vector"), Names(("project_id",)), Names(())),)
    assert t.change.gdpr_new == ["forbidden label 'project_id' can reach Grafana Cloud"]
    assert "job victoriametrics no longer reaches Grafana Cloud" in formats.to_text(report)
