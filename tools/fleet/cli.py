"""The `fleet` command: parses options, wires library calls, maps outcomes to exit codes.

Exit codes: 0 clean, 1 findings, 2 bad input or usage, 3 internal error (a bug: one line naming
the input being processed; the traceback with `fleet --debug`). No work happens here.
"""
from __future__ import annotations

import gc
import sys
import traceback

import click

from . import commands
from .errors import InputError, input_of

EXIT_CLEAN, EXIT_FINDINGS, EXIT_INPUT, EXIT_BUG = 0, 1, 2, 3


class FleetGroup(click.Group):
    """Turns InputError anywhere below into a clean message and exit code 2, and any other
    exception into a one-line bug report and exit code 3 (1 would read as "findings").

    Commands load lazily: `fleet render` imports only commands/render.py (a module usually
    holds the command of its name), not `diff`'s or `lint`'s dependencies — a third of a
    one-cluster render's time was imports it never used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_all()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str):  # type: ignore[override]
        if name not in self.commands:
            for command in commands.module_commands(name.replace("-", "_")):
                self.add_command(command)
        if name not in self.commands:
            self._load_all()
        return super().get_command(ctx, name)

    def _load_all(self) -> None:
        for command in commands.discover():
            if command.name not in self.commands:
                self.add_command(command)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except InputError as exc:
            click.echo(exc.render(), err=True)
            ctx.exit(EXIT_INPUT)
        except (click.exceptions.ClickException, click.exceptions.Abort, click.exceptions.Exit):
            raise
        except Exception as exc:  # noqa: BLE001 - the edge where a bug becomes a report
            if ctx.params.get("debug"):
                traceback.print_exc()
            where = input_of(exc) or f"the inputs of `fleet {ctx.invoked_subcommand}`"
            click.echo(f"fleet: internal error while processing {where}: "
                       f"{type(exc).__name__}: {_one_line(str(exc))} (a bug: please report it"
                       f"{'' if ctx.params.get('debug') else '; `fleet --debug ...` shows the traceback'})", err=True)
            ctx.exit(EXIT_BUG)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


@click.group(cls=FleetGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="starform-fleet")
@click.option("--debug", is_flag=True, help="On an internal error (exit 3), print the traceback too.")
def cli(debug: bool) -> None:
    """Render and lint the Starform fleet (Flux manifests, Alloy config, rules)."""


#: The cyclic GC's first-generation threshold (CPython's default is 700). The CLI builds large,
#: long-lived, acyclic structures (a 1,000-cluster model, 100,000 parsed rendered objects), and
#: with the default every 700 allocations triggers a scan whose older generations keep growing:
#: about a tenth of a cold 1,000-cluster lint's CPU went to collections that freed nothing.
GC_THRESHOLD = (100_000, 50, 100)


def main() -> None:
    gc.set_threshold(*GC_THRESHOLD)
    try:
        cli.main(standalone_mode=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_INPUT)
        sys.exit(code)


if __name__ == "__main__":
    main()
