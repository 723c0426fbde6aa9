"""The `fleet` command: parses options, wires library calls, maps outcomes to exit codes.

Exit codes: 0 clean, 1 findings, 2 bad input or usage. No work happens here.
"""
from __future__ import annotations

import sys

import click

from . import commands
from .errors import InputError

EXIT_CLEAN, EXIT_FINDINGS, EXIT_INPUT = 0, 1, 2


class FleetGroup(click.Group):
    """Turns InputError anywhere below into a clean message and exit code 2."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except InputError as exc:
            click.echo(exc.render(), err=True)
            ctx.exit(EXIT_INPUT)


@click.group(cls=FleetGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="starform-fleet")
def cli() -> None:
    """Render and lint the Starform fleet (Flux manifests, Alloy config, rules)."""


for _command in commands.discover():
    cli.add_command(_command)


def main() -> None:
    try:
        cli.main(standalone_mode=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_INPUT)
        sys.exit(code)


if __name__ == "__main__":
    main()
