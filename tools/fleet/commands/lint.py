"""`fleet lint`: run every check plug-in over the model and rendered/, apply inline suppressions,
write the report in the chosen format; exit 1 on a finding at or above --fail-on."""
from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import click

from .. import changed, checks, model, suppress
from ..changed import Change
from ..checks import Check, CheckContext
from ..errors import InputError, Severity, input_of, processing
from ..k8s.objects import rendered_objects
from ..lock import rendered_lock
from ..report import WRITERS, Report, sort_findings
from .render import root_option


@click.command("lint")
@root_option
@click.option("--crds", type=click.Path(file_okay=False, exists=True, path_type=Path), multiple=True,
              help="Also validate Flux, Gateway API and Envoy Gateway objects against the real CRD files in "
                   "this folder (repeatable; as kubeconform users do).")
@click.option("--charts", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder of pinned chart defaults (<chart>/<version>/values.yaml) for the values-key check.")
@click.option("--only", multiple=True, help="Run only these checks (repeatable).")
@click.option("--skip", multiple=True, help="Skip these checks (repeatable).")
@click.option("--format", "fmt", type=click.Choice(sorted(WRITERS)), default="text", show_default=True)
@click.option("--fail-on", type=click.Choice([s.value for s in Severity]), default="error", show_default=True,
              help="Lowest severity that makes the run fail (exit 1); suppressed findings never do.")
@click.option("--list", "list_checks", is_flag=True, help="List the available checks and exit.")
@click.option("--changed", is_flag=True,
              help="Lint only what the change can affect: the working tree (untracked files included) against "
                   "HEAD's merge base with --base; findings the change cannot alter are not repeated.")
@click.option("--base", "base_ref", metavar="REF", help="With --changed: the branch the change is measured against "
                                                         "(default: main).")
def lint_command(root: Path, crds: tuple[Path, ...], charts: Path | None, only: tuple[str, ...], skip: tuple[str, ...],
                 fmt: str, fail_on: str, list_checks: bool, changed: bool, base_ref: str | None) -> None:
    """Lint inputs and rendered/ with every check plug-in (see --list)."""
    available = checks.discover()
    if list_checks:
        for c in available:
            click.echo(f"{c.name:20} {c.description}")
        click.echo(f"{suppress.NAME:20} {suppress.DESCRIPTION}")
        return
    unknown = sorted(set(only) - {c.name for c in available}) + sorted(set(skip) - {c.name for c in available} - {suppress.NAME})
    if unknown:
        raise click.UsageError(f"unknown check(s): {', '.join(unknown)}")
    with rendered_lock(root, "lint", write=False) as notes:
        for note in notes:
            click.echo(f"fleet: {note}", err=True)
        if base_ref and not changed:
            raise click.UsageError("--base goes with --changed")
        _lint(root, available, crds, charts, only, skip, fmt, fail_on, changed, base_ref)


#: With two cores or more and a large fleet, these checks run in forked processes beside the
#: main one: they spend their time in subprocesses (kubectl, promtool, VictoriaMetrics and
#: vmalert, cloud-init, the VRL compiler) and in files of their own; the others share the parsed
#: rendered objects and merged values of the main process. The rules group mostly waits on its
#: binaries, so a third process costs little CPU and takes its wall time off the other two.
#: Each group is (its checks, whether they read the parsed rendered objects): a group that does
#: not is forked as soon as the model is loaded, so it runs while the main process parses
#: rendered/; the other is forked after the parse, so every process reads the same objects.
FORKED_GROUPS = ((frozenset({"rules-tests", "rules-vm", "rules-static", "rules-syntax", "producers-sync"}), False),
                 (frozenset({"yamllint", "kustomize-build", "regional-tier", "k8s-schema", "flux-crds"}), True))
SECOND_PROCESS = frozenset().union(*(names for names, _ in FORKED_GROUPS))
PARALLEL_MIN_CLUSTERS = 64

# The forked worker's state: set before forking, read by the child.
_WORK: tuple[CheckContext, list, dict] | None = None


def _narrowed(ctx: CheckContext, check: Check, plan: dict) -> CheckContext:
    """The context `check` runs with: the whole fleet, or (--changed) the clusters or files it must lint."""
    how = plan.get(check.name)
    if how is None:
        return ctx
    kind, names = how
    if kind == "files":
        return replace(ctx, files=names)
    fleet = replace(ctx.fleet, clusters={cid: c for cid, c in ctx.fleet.clusters.items() if cid in names})
    return replace(ctx, fleet=fleet, clusters=names)


def _run_checks(ctx: CheckContext, selected: list, plan: dict | None = None) -> tuple[list, list]:
    """(findings, [(check name, seconds)]) of `selected`, in order."""
    findings, timings = [], []
    for check in selected:
        start = time.perf_counter()
        with processing(f"the inputs and rendered/ (lint check {check.name})"):
            findings.extend(check.run(_narrowed(ctx, check, plan or {})))
        timings.append((check.name, time.perf_counter() - start))
    return findings, timings


def _run_forked(group: int) -> tuple:
    """A child's side: its group's results, or the error to raise again in the parent (an
    InputError as itself; anything else as a bug report naming the input)."""
    assert _WORK is not None
    ctx, groups, plan = _WORK
    try:
        return ("ok", *_run_checks(ctx, groups[group], plan))
    except InputError as exc:
        return ("input", exc)
    except Exception as exc:  # noqa: BLE001 - carried to the parent, which reports it as a bug
        return ("bug", f"{type(exc).__name__}: {exc}", input_of(exc))


def run_checks(ctx: CheckContext, selected: list, plan: dict | None = None) -> tuple[list, list]:
    """Run `selected` checks (narrowed by `plan`: check name → ("clusters"|"files", names));
    on a large fleet split over forked processes (see FORKED_GROUPS). Same findings either way:
    each check runs whole in one process."""
    global _WORK
    groups = [([c for c in selected if c.name in names], reads_objects) for names, reads_objects in FORKED_GROUPS]
    groups = [(g, reads_objects) for g, reads_objects in groups if g]
    first = [c for c in selected if c.name not in SECOND_PROCESS]
    if (len(getattr(ctx.fleet, "clusters", ())) < PARALLEL_MIN_CLUSTERS or not first or not groups
            or (os.cpu_count() or 1) < 2 or "fork" not in multiprocessing.get_all_start_methods()):
        return _run_checks(ctx, selected, plan)
    _WORK = (ctx, [g for g, _ in groups], plan or {})
    pools, pending = [], []
    try:
        for i, (_, reads_objects) in sorted(enumerate(groups), key=lambda g: g[1][1]):
            if reads_objects and ctx.rendered.is_dir() and not plan:
                with processing("rendered/ (reading the rendered objects for the lint checks)"):
                    rendered_objects(ctx)  # parsed once, before the fork: every process reads the same objects
            gc.freeze()  # what the child inherits stays out of its collections (and its pages shared)
            pools.append(multiprocessing.get_context("fork").Pool(1))
            pending.append((i, pools[-1].apply_async(_run_forked, (i,))))
        findings, timings = _run_checks(ctx, first, plan)
        outcomes = [p.get() for _, p in sorted(pending, key=lambda p: p[0])]
    finally:
        _WORK = None
        for pool in pools:
            pool.terminate()
            pool.join()
        gc.unfreeze()
    for outcome in outcomes:
        if outcome[0] == "input":
            raise outcome[1]
        if outcome[0] == "bug":
            exc = RuntimeError(outcome[1])
            exc.fleet_input = outcome[2]  # type: ignore[attr-defined]
            raise exc
    order = {c.name: i for i, c in enumerate(selected)}
    for outcome in outcomes:
        findings, timings = findings + outcome[1], timings + outcome[2]
    return findings, sorted(timings, key=lambda t: order[t[0]])


def plan_changed(root: Path, base_ref: str | None, selected: list[Check]) -> tuple[list[Check], dict, set[str] | None, Change]:
    """(the checks to run, how each is narrowed, the clusters the model needs — None: all, the change)."""
    change = changed.analyse(root, base_ref)
    to_run, plan, model_clusters = [], {}, set()
    for check in selected:
        if check.scope == "cluster":
            scope = change.cluster_scope(check.reads)
            if scope is None:
                model_clusters = None
            elif scope:
                plan[check.name] = ("clusters", frozenset(scope))
                if model_clusters is not None:
                    model_clusters |= scope
            else:
                continue
        elif check.scope == "file":
            files = change.file_scope(check.reads)
            if files is not None:
                if not files:
                    continue
                plan[check.name] = ("files", frozenset(files))
        elif change.fleet_runs(check.reads):
            model_clusters = None
        else:
            continue
        to_run.append(check)
    return to_run, plan, model_clusters, change


def _describe_plan(selected: list[Check], to_run: list[Check], plan: dict, change: Change) -> str:
    ran = {c.name for c in to_run}
    parts = []
    for c in selected:
        how = plan.get(c.name)
        parts.append(f"{c.name} " + ("skipped" if c.name not in ran else "all" if how is None
                                     else f"{len(how[1])} {how[0]}"))
    return f"lint --changed: {len(change.paths)} changed path(s); " + ", ".join(parts)


def _lint(root: Path, available: list, crds: Path | None, charts: Path | None, only: tuple[str, ...],
          skip: tuple[str, ...], fmt: str, fail_on: str, only_changed: bool = False, base_ref: str | None = None) -> None:
    selected = [c for c in available if not ((only and c.name not in only) or c.name in skip)]
    plan: dict = {}
    model_clusters = None
    change = None
    if only_changed:
        to_run, plan, model_clusters, change = plan_changed(root, base_ref, selected)
        click.echo(_describe_plan(selected, to_run, plan, change), err=True)
        selected = to_run
    fleet = model.load(root, model_clusters)
    ctx = CheckContext(root=root.resolve(), fleet=fleet, rendered=root.resolve() / "rendered",
                       options={"crds": list(crds) or None, "charts": charts},
                       changed=frozenset(change.paths) if change is not None and not change.toolchain else None)
    findings, timings = run_checks(ctx, selected, plan)
    directives, problems = suppress.scan(ctx.root)
    ran = {name for name, _ in timings}
    # A check narrowed by --changed cannot tell whether a comment silences nothing: the full lint says.
    kept, suppressed = suppress.apply(sort_findings(findings) + problems, directives, ran - set(plan),
                                      {c.name for c in available})
    descriptions = {c.name: c.description for c in available if c.name in ran}
    if suppress.NAME in skip:  # valid comments still silence; their own findings are not reported
        kept = [f for f in kept if f.check != suppress.NAME]
    else:
        descriptions[suppress.NAME] = suppress.DESCRIPTION
    report = Report(sort_findings(kept), sorted(suppressed, key=lambda s: s.finding.sort_key()), descriptions, ctx.root)
    WRITERS[fmt](report, sys.stdout)
    threshold = Severity(fail_on).rank
    failing = [f for f in report.findings if f.severity.rank >= threshold]
    summary = ", ".join(f"{name} {secs:.2f}s" for name, secs in timings)
    click.echo(f"lint: {len(report.findings)} finding(s), {len(failing)} failing, {len(report.suppressed)} suppressed; "
               f"checks: {summary}", err=True)
    if failing:
        raise SystemExit(1)


COMMANDS = [lint_command]
