"""CLI plug-ins: each module here may define `COMMANDS = [click.Command, ...]`.

`fleet.cli` adds every command it finds, so a feature brings its own sub-command without
editing the CLI module.
"""
from __future__ import annotations

import importlib
import pkgutil

import click


def discover() -> list[click.Command]:
    commands: list[click.Command] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        commands.extend(getattr(module, "COMMANDS", []))
    return commands
