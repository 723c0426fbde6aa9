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
        commands.extend(module_commands(info.name))
    return commands


def module_commands(module_name: str) -> list[click.Command]:
    """The commands of one plug-in module (none when there is no such module)."""
    if module_name.startswith("_") or module_name not in {i.name for i in pkgutil.iter_modules(__path__)}:
        return []
    return list(getattr(importlib.import_module(f"{__name__}.{module_name}"), "COMMANDS", []))
