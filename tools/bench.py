"""`make bench`: render and lint a generated 1,000-cluster fleet and report against the targets.

Targets (2 cores, issue 19): cold lint (no .cache/) <= 15 s, one-cluster render <= 0.5 s,
`fleet lint --changed` after that change <= 2 s, `fleet diff` of a one-line base change <= 20 s,
peak memory of any step <= 1 GiB; a full render <= 10 s.
Timings are printed, not asserted: a benchmark informs, tests decide. Each step's peak RSS is
its process tree's largest (os.wait4; resource.getrusage(RUSAGE_CHILDREN) for the whole run),
its CPU the user + system seconds of the tree. The machine is shared: the load average is printed
beside the figures (wall time above CPU time / cores means the step waited for the CPU).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GIB = 1024 ** 3
TARGETS = {"render": 10.0, "lint (cold, no .cache)": 15.0, "one-cluster render": 0.5,
           "lint --changed": 2.0, "diff (one-line base change)": 20.0, "diff (one-line relabel change)": 20.0}
MEMORY_TARGET = 1 * GIB
DIFF_ARGS = ["diff"]


def make_fleet(dest: Path, clusters: int) -> None:
    for name in ("base", "overlays", "regions", "policies"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, dest / name)
    for name in (".yamllint.yaml", ".gitignore"):
        shutil.copy(REPO / name, dest / name)
    for name in ("tests/rules", "tests/relabel"):
        shutil.copytree(REPO / name, dest / name)
    regions = sorted(p.name for p in (REPO / "regions").iterdir() if p.is_dir())
    for i in range(clusters):
        region = regions[i % len(regions)]
        env = "production" if i % 3 else "staging"
        cid = f"{region}-{env[:4]}-{i:04d}"
        folder = dest / "clusters" / cid
        folder.mkdir(parents=True)
        extra = "" if i % 10 else "components:\n  vmagent:\n    values:\n      resources:\n        limits:\n          memory: 3Gi\n"
        (folder / "cluster.yaml").write_text(
            f"id: {cid}\nregion: {region}\nenvironment: {env}\nshuttle:\n  tokenSecretName: shuttle-registration\n{extra}")
    # The control plane (profile control-plane): the producers of the control-plane alerts.
    probed = sorted(p.name for p in (dest / "clusters").iterdir())[:20]
    cp_region = "nyc3" if "nyc3" in regions else regions[0]
    folder = dest / "clusters" / f"{cp_region}-control-01"
    folder.mkdir(parents=True)
    lbs = "".join(f"    - cluster: {c}\n      url: https://edge.{c}.starform.cloud/healthz\n" for c in probed)
    (folder / "cluster.yaml").write_text(
        f"id: {cp_region}-control-01\nregion: {cp_region}\nenvironment: production\nprofile: control-plane\n"
        f"controlPlane:\n  postgresDsnSecretName: starbase-postgres-dsn\n  loadBalancers:\n{lbs}")


def run(cmd: list[str], cwd: Path) -> tuple[int, float, int, float, str]:
    """(exit code, seconds, peak RSS in bytes of the process tree, its CPU seconds, stderr) of one command."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        secs = time.perf_counter() - start
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    return proc.returncode, secs, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime, stderr


def timed(label: str, cmd: list[str], cwd: Path, results: dict) -> float:
    code, secs, rss, cpu, stderr = run(cmd, cwd)
    status = "ok" if code in (0, 1) else f"exit {code}"
    target = TARGETS.get(label)
    verdict = "" if target is None else ("  within target" if secs <= target else f"  OVER target {target:g}s")
    print(f"{label:30} {secs:7.2f}s  (CPU {cpu:6.2f}s)  peak RSS {rss / 2**20:6.0f} MiB  ({status}){verdict}", flush=True)
    if code not in (0, 1):
        print(stderr[-2000:], file=sys.stderr)
    results[label] = (secs, rss)
    return secs


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.email=bench@example.com", "-c", "user.name=bench", *args],
                   check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=1000)
    args = parser.parse_args()
    fleet = str(Path(sys.executable).parent / "fleet")
    shared = REPO.parent / "shared"
    crds = [shared / "crds/flux", shared / "crds/gateway/standard", shared / "crds/envoy-gateway"]
    lint_flags = [a for c in crds if c.exists() for a in ("--crds", str(c))] + ["--charts", str(shared / "charts")] \
        if shared.exists() else []
    results: dict[str, tuple[float, int]] = {}
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        root = Path(tmp)
        make_fleet(root, args.clusters)
        print(f"fleet of {args.clusters} clusters in {root}; {os.cpu_count()} cores; "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        timed("render", [fleet, "render", "--root", str(root)], root, results)
        timed("render (unchanged)", [fleet, "render", "--root", str(root)], root, results)
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "bench fleet")
        # The render's own state (its index and what it saw of its inputs) survives the cold lint.
        render_state = {p: p.read_bytes() for p in (root / ".cache/render-index.json", root / ".cache/render-inputs.json")}
        shutil.rmtree(root / ".cache")
        timed("lint (cold, no .cache)", [fleet, "lint", "--root", str(root), *lint_flags], root, results)
        for path, data in render_state.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        timed("lint (warm cache)", [fleet, "lint", "--root", str(root), *lint_flags], root, results)
        first = sorted((root / "clusters").iterdir())[0] / "cluster.yaml"
        first.write_text(first.read_text() + "components:\n  envoy-gateway:\n    values:\n      deployment:\n        replicas: 4\n")
        timed("one-cluster render", [fleet, "render", "--root", str(root)], root, results)
        timed("lint --changed", [fleet, "lint", "--root", str(root), "--changed", *lint_flags], root, results)
        timed("lint after it (full)", [fleet, "lint", "--root", str(root), *lint_flags], root, results)
        bench_diff(fleet, root, results)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    verdict = "within target" if peak <= MEMORY_TARGET else f"OVER target {MEMORY_TARGET // GIB} GiB"
    print(f"{'peak RSS (largest process)':30} {peak / 2**20:7.0f} MiB  {verdict}; load average {os.getloadavg()[0]:.1f}")


def bench_diff(fleet: str, root: Path, results: dict) -> None:
    """`fleet diff` of one-line base changes against main: a values change, then a relabel change."""
    git(root, "checkout", "-q", "--", ".")
    values = root / "base/components/envoy-gateway/values.yaml"
    values.write_text(values.read_text().replace("replicas: 2", "replicas: 3", 1))
    timed("diff (one-line base change)", [fleet, *DIFF_ARGS, "--root", str(root)], root, results)
    # The worst one-line change: `project_id` leaves the GDPR gate's labeldrop, every cluster's
    # config.alloy changes and the telemetry diff must find the leak in each distinct config.
    git(root, "checkout", "-q", "--", ".")
    platform = root / "base/relabel/platform.yaml"
    platform.write_text(platform.read_text().replace("regex: project_id|", "regex: ", 1))
    timed("diff (one-line relabel change)", [fleet, *DIFF_ARGS, "--root", str(root), "--format", "json",
                                              "--output", str(root / ".cache/diff.json")], root, results)


if __name__ == "__main__":
    main()
