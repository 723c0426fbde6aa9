"""A render killed at any point of its swap leaves rendered/ entirely old or entirely new (after the
next fleet command), never mixed or missing; one render at a time; work folders never linger."""
from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO
from fleet import model
from fleet.cli import cli
from fleet.render.fleet import render_fleet
from fleet.writer import read_tree

NEXT_COMMANDS = (["render", "--check"], ["lint", "--only", "flux-refs"], ["render"])


def _fleet(root: Path, *args: str):
    return CliRunner().invoke(cli, [args[0], "--root", str(root), *args[1:]])


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith((".rendered.", ".render-tmp"))
                  and p.name != ".rendered.lock")


def _change_every_unit_kind(root: Path) -> None:
    """After this, the swap replaces every cluster, adds one and removes one."""
    fleet_yaml = root / "base/fleet.yaml"
    fleet_yaml.write_text(fleet_yaml.read_text().replace("interval: 10m", "interval: 7m", 1))
    src = root / "clusters/nyc3-prod-01"
    (root / "clusters/nyc3-prod-77").mkdir()
    (root / "clusters/nyc3-prod-77/cluster.yaml").write_text(
        (src / "cluster.yaml").read_text().replace("id: nyc3-prod-01", "id: nyc3-prod-77"))
    gone = "fra1-staging-01"
    for path in sorted((root / f"clusters/{gone}").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (root / f"clusters/{gone}").rmdir()
    # a control-plane cluster that probed its load balancer stops probing it (else: bad input)
    for cluster_yaml in (root / "clusters").glob("*/cluster.yaml"):
        text = cluster_yaml.read_text()
        probe = re.compile(rf"(?m)^    - cluster: {gone}\n      url: .*\n")
        if probe.search(text):
            cluster_yaml.write_text(probe.sub("", text))


#: `fleet render` in a child whose n-th os.rename/os.replace call (the swap's steps: the journal's
#: commit, each folder rename, the cache index) first does ACTION: SIGKILL or SIGTERM itself, or
#: wait for CONTROL/resume. The fault is injected from outside the code under test.
CHILD = """
import os, signal, sys, time
from pathlib import Path
action, at, control, root = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
calls = [0]
def hooked(real):
    def call(*args, **kwargs):
        calls[0] += 1
        if calls[0] == at:
            (control / "paused").write_text(str(os.getpid()))
            if action == "wait":
                while not (control / "resume").exists():
                    time.sleep(0.01)
            else:
                os.kill(os.getpid(), {"kill": signal.SIGKILL, "term": signal.SIGTERM}[action])
        return real(*args, **kwargs)
    return call
os.rename, os.replace = hooked(os.rename), hooked(os.replace)
from fleet.cli import main
sys.argv = ["fleet", "render", "--root", root]
main()
"""


def _start(root: Path, action: str, point: int, control: Path) -> subprocess.Popen:
    for name in ("paused", "resume"):
        (control / name).unlink(missing_ok=True)
    return subprocess.Popen([sys.executable, "-c", CHILD, action, str(point), str(control), str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root)


def _wait_paused(proc: subprocess.Popen, control: Path) -> bool:
    """True when the child reached its fault point; False when it finished without one."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (control / "paused").exists():
            return True
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read().decode()
            return (control / "paused").exists()
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("render neither reached its fault point nor finished")


@pytest.fixture
def swap_scene(fleet_copy: Path, tmp_path: Path):
    """(root, old tree, new tree, control folder): rendered/ holds the old tree, the inputs the new."""
    assert _fleet(fleet_copy, "render").exit_code == 0
    old = read_tree(fleet_copy / "rendered")
    _change_every_unit_kind(fleet_copy)
    new = {k: v.encode() for k, v in render_fleet(model.load(fleet_copy)).items()}
    assert old != new and not set(old) <= set(new) and not set(new) <= set(old)
    control = tmp_path / "control"
    control.mkdir()
    return fleet_copy, old, new, control


def _snapshot(root: Path) -> tuple[dict, list[str]]:
    return read_tree(root / "rendered"), _leftovers(root)


def test_sigkill_at_every_point_of_the_swap_leaves_old_or_new_after_the_next_command(swap_scene) -> None:
    root, old, new, control = swap_scene
    pristine = {p: p.read_bytes() for p in (root / "rendered").rglob("*") if p.is_file()}
    point, outcomes = 1, []
    while True:
        proc = _start(root, "kill", point, control)
        if not _wait_paused(proc, control):
            break
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        mid_swap = read_tree(root / "rendered")
        command = NEXT_COMMANDS[point % len(NEXT_COMMANDS)]
        result = _fleet(root, *command)
        after = read_tree(root / "rendered")
        assert after in (old, new), f"point {point}: mixed tree after `fleet {' '.join(command)}`"
        assert _leftovers(root) == [], (point, _leftovers(root))
        if command == ["render"]:
            assert after == new and result.exit_code == 0, result.output
        elif command[0] == "render":  # --check: the interrupted swap was completed or dropped, not redone
            assert result.exit_code == (0 if after == new else 1), (point, command, result.output)
        else:  # lint reads a whole tree, old or new: both are consistent
            assert result.exit_code == 0, (point, command, result.output)
        outcomes.append((mid_swap in (old, new), after == new))
        _restore(root, pristine)
        point += 1
        assert point < 60
    # the kills hit mid-swap states (mixed trees on disk) and both sides of the commit point
    assert len(outcomes) >= 10 and (False, True) in outcomes and (True, False) in outcomes, outcomes


def _restore(root: Path, pristine: dict[Path, bytes]) -> None:
    """Put the old tree back as files on disk, for the next kill point."""
    import shutil
    shutil.rmtree(root / "rendered")
    for path, data in pristine.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / ".cache/render-index.json").unlink(missing_ok=True)


@pytest.mark.parametrize("point", [1, 2, 4, 6, 9])
def test_sigterm_during_the_swap_ends_the_process_after_it(swap_scene, point: int) -> None:
    root, old, new, control = swap_scene
    proc = _start(root, "term", point, control)
    assert _wait_paused(proc, control)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGTERM
    assert read_tree(root / "rendered") == new  # the swap finished before the signal was taken
    assert not (root / ".rendered.journal").exists()
    assert _fleet(root, "render", "--check").exit_code == 0
    assert _leftovers(root) == []


def test_work_folders_of_a_killed_render_are_removed_and_ignored_by_git(fleet_copy: Path) -> None:
    assert _fleet(fleet_copy, "render").exit_code == 0
    before = read_tree(fleet_copy / "rendered")
    for name in (".rendered.new-abc123/clusters/x", ".rendered.old-def456/clusters/y", ".render-tmp9/z"):
        (fleet_copy / name).mkdir(parents=True)
        (fleet_copy / name / "f.yaml").write_text("a: 1\n")
    (fleet_copy / ".rendered.journal.tmp").write_text("{")
    result = _fleet(fleet_copy, "render")
    assert result.exit_code == 0, result.output
    assert "removed .rendered.new-abc123" in result.output
    assert _leftovers(fleet_copy) == [] and read_tree(fleet_copy / "rendered") == before
    names = [".rendered.new-abc123/f", ".rendered.old-def456/f", ".rendered.journal", ".rendered.lock", ".render-tmp9/z"]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=REPO, capture_output=True, text=True)
    assert sorted(ignored.stdout.split()) == sorted(names)
    kept = subprocess.run(["git", "check-ignore", "--no-index", "rendered/clusters/x.yaml"], cwd=REPO)
    assert kept.returncode == 1  # rendered/ itself stays tracked


def test_a_second_render_or_a_lint_during_a_render_is_refused_with_its_pid(swap_scene) -> None:
    root, old, new, control = swap_scene
    proc = _start(root, "wait", 3, control)
    try:
        assert _wait_paused(proc, control)
        for command in (["render"], ["render", "--check"], ["lint", "--only", "flux-refs"]):
            result = _fleet(root, *command)
            assert result.exit_code == 2, (command, result.output)
            assert f"another fleet render is running (pid {proc.pid})" in result.output, result.output
    finally:
        (control / "resume").write_text("")
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert read_tree(root / "rendered") == new


def test_readers_share_the_lock_and_keep_a_render_out(fleet_copy: Path) -> None:
    assert _fleet(fleet_copy, "render").exit_code == 0
    with open(fleet_copy / ".rendered.lock", "a+") as other_reader:
        fcntl.flock(other_reader, fcntl.LOCK_SH)
        assert _fleet(fleet_copy, "lint", "--only", "flux-refs").exit_code == 0
        assert _fleet(fleet_copy, "render", "--check").exit_code == 0
        result = _fleet(fleet_copy, "render")
        assert result.exit_code == 2 and "is reading rendered/" in result.output, result.output


def test_an_unwritable_cache_is_a_warning_not_a_failure(fleet_copy: Path) -> None:
    (fleet_copy / ".cache").write_text("a file where the cache folder should be\n")
    path = fleet_copy / "clusters/nyc3-prod-01/cluster.yaml"
    path.write_text(path.read_text().replace("tokenSecretName: shuttle-registration", "tokenSecretName: shuttle-reg"))
    result = _fleet(fleet_copy, "render")
    assert result.exit_code == 0, result.output
    assert "warning: cannot write the render cache" in result.output and "Traceback" not in result.output
    assert read_tree(fleet_copy / "rendered") == {k: v.encode() for k, v in render_fleet(model.load(fleet_copy)).items()}
    result = _fleet(fleet_copy, "lint", "--only", "yamllint", "--only", "kustomize-build")
    assert result.exit_code == 0, result.output
    assert "warning: cannot write the cache" in result.output and "Traceback" not in result.output


def test_a_failed_rollback_keeps_the_journal_and_the_next_command_completes_the_swap(swap_scene, monkeypatch) -> None:
    """A rename error mid-swap rolls back; if the rollback fails too, the journal stays (never a
    mix without a journal) and the next fleet command rolls forward."""
    from fleet import writer
    root, old, new, _ = swap_scene
    real, calls = os.rename, {"n": 0}

    def failing(src, dst):
        calls["n"] += 1
        if calls["n"] in (3, 4):  # mid-swap, then the rollback's first rename
            raise OSError(16, "Device or resource busy", str(src))
        return real(src, dst)

    monkeypatch.setattr(writer.os, "rename", failing)
    result = _fleet(root, "render")
    monkeypatch.setattr(writer.os, "rename", real)
    assert result.exit_code == 2 and "Device or resource busy" in result.output, result.output
    assert "the next fleet command completes it" in result.output and "unchanged" not in result.output
    assert (root / ".rendered.journal").exists() and read_tree(root / "rendered") not in (old, new)
    result = _fleet(root, "render", "--check")
    assert result.exit_code == 0 and "completed an interrupted render" in result.output, result.output
    assert read_tree(root / "rendered") == new and _leftovers(root) == []


@pytest.mark.parametrize("journal, message", [
    ("{not json", "unreadable render journal"),
    ('{"version": 1, "staging": "../../etc", "parked": ".rendered.old-x", "units": []}', "outside the render's own"),
    ('{"version": 1, "staging": ".rendered.new-x", "parked": ".rendered.old-x", "units": [["../x", true]]}',
     "outside the render's own"),
])
def test_a_journal_fleet_did_not_write_is_bad_input(fleet_copy: Path, journal: str, message: str) -> None:
    assert _fleet(fleet_copy, "render").exit_code == 0
    before = read_tree(fleet_copy / "rendered")
    (fleet_copy / ".rendered.journal").write_text(journal)
    for command in (["render"], ["lint", "--only", "flux-refs"]):
        result = _fleet(fleet_copy, *command)
        assert result.exit_code == 2 and ".rendered.journal: error: " in result.output and message in result.output
    assert read_tree(fleet_copy / "rendered") == before
