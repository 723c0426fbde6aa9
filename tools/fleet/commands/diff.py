"""`fleet diff`: REF rendered in a temporary worktree against the working tree, grouped across
clusters, with the telemetry diff; exit 0 no change, 1 changes, 2 bad input."""
from __future__ import annotations

from pathlib import Path

import click

from ..diff import formats
from ..diff.compare import diff
from ..diff.worktree import Interrupted
from ..errors import InputError, SourceRef
from .render import root_option


@click.command("diff")
@root_option
@click.option("--base", "ref", metavar="REF", default=None,
              help="Commit to compare with (default: the merge base of HEAD with main).")
@click.option("--format", "fmt", type=click.Choice(sorted(formats.WRITERS)), default="text", show_default=True,
              help="markdown: a PR comment under GitHub's 65,536-character limit; json: for machines.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the complete, untruncated report (in --format) to this file.")
def diff_command(root: Path, ref: str | None, fmt: str, output: Path | None) -> None:
    """Render REF and the working tree and show what changes: each change once, grouped across the
    clusters (and regions) it touches, and what can now reach Grafana Cloud and the regions'
    VictoriaMetrics (jobs, label names, the GDPR verdict)."""
    try:
        report = diff(root, ref)
    except Interrupted as exc:  # the worktree is gone; end as the signal would have
        click.echo(f"fleet diff: interrupted by {exc}; the temporary worktree was removed", err=True)
        raise SystemExit(128 + exc.signum) from None
    if output is not None:
        full = formats.to_markdown(report, limit=10**12) if fmt == "markdown" else formats.WRITERS[fmt](report)
        try:
            output.write_text(full, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write the report: {exc.strerror or exc}", SourceRef(str(output))) from None
    if fmt == "markdown":
        click.echo(formats.to_markdown(report, full_report=str(output) if output else None), nl=False)
    else:
        click.echo(formats.WRITERS[fmt](report), nl=False)
    raise SystemExit(1 if report.changed else 0)


COMMANDS = [diff_command]
