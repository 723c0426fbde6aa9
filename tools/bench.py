"""`make bench`: render and lint a generated 1,000-cluster fleet and report against the targets.

Targets (2 cores): full render <= 10 s, lint <= 20 s, re-render after a one-cluster change <= 1 s.
Timings are printed, not asserted: a benchmark informs, tests decide.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"render": 10.0, "lint": 20.0, "one-cluster render": 1.0}


def make_fleet(dest: Path, clusters: int) -> None:
    for name in ("base", "overlays", "regions", "policies"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, dest / name)
    shutil.copy(REPO / ".yamllint.yaml", dest / ".yamllint.yaml")
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


def timed(label: str, cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    secs = time.perf_counter() - start
    status = "ok" if proc.returncode in (0, 1) else f"exit {proc.returncode}"
    target = TARGETS.get(label)
    verdict = "" if target is None else ("  within target" if secs <= target else f"  OVER target {target:.0f}s")
    print(f"{label:24} {secs:7.2f}s  ({status}){verdict}")
    if proc.returncode not in (0, 1):
        print(proc.stderr[-2000:], file=sys.stderr)
    return secs


def bench_diff_relabel(fleet: str, clusters: int) -> None:
    """`fleet diff` of a one-line base change (`project_id` leaves the GDPR gate's labeldrop: every
    cluster's config.alloy changes, the telemetry diff finds the leak) in a fresh git repo, so both
    sides render in full; target 20 s."""
    label = "diff (one-line relabel change)"
    TARGETS[label] = 20.0
    with tempfile.TemporaryDirectory(prefix="fleet-bench-diff-") as tmp:
        root = Path(tmp)
        make_fleet(root, clusters)
        git = ["git", "-C", str(root), "-c", "user.name=bench", "-c", "user.email=bench@example.org"]
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
            subprocess.run(git + args, check=True)
        platform = root / "base" / "relabel" / "platform.yaml"
        platform.write_text(platform.read_text().replace("regex: project_id|", "regex: ", 1))
        timed(label, [fleet, "diff", "--root", str(root), "--format", "json", "--output", str(root / "diff.json")], root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=1000)
    args = parser.parse_args()
    fleet = str(Path(sys.executable).parent / "fleet")
    shared = REPO.parent / "shared"
    crds = [shared / "crds/flux", shared / "crds/gateway/standard", shared / "crds/envoy-gateway"]
    lint_flags = [a for c in crds if c.exists() for a in ("--crds", str(c))] + ["--charts", str(shared / "charts")] \
        if shared.exists() else []
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        root = Path(tmp)
        make_fleet(root, args.clusters)
        print(f"fleet of {args.clusters} clusters in {root}")
        timed("render", [fleet, "render", "--root", str(root)], root)
        timed("render (unchanged)", [fleet, "render", "--root", str(root)], root)
        timed("lint", [fleet, "lint", "--root", str(root), *lint_flags], root)
        timed("lint (warm cache)", [fleet, "lint", "--root", str(root), *lint_flags], root)
        first = sorted((root / "clusters").iterdir())[0] / "cluster.yaml"
        first.write_text(first.read_text() + "components:\n  envoy-gateway:\n    values:\n      deployment:\n        replicas: 4\n")
        timed("one-cluster render", [fleet, "render", "--root", str(root)], root)
        timed("one-cluster lint", [fleet, "lint", "--root", str(root), *lint_flags], root)
    bench_diff_relabel(fleet, args.clusters)


if __name__ == "__main__":
    main()
