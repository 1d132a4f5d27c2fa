"""``medllm-tui plugin new NAME``: write an installable plugin package that passes its own tests.

The package gets a ``medllm.plugins`` entry point, one working stage with a settings
dataclass, and tests that run the stage through the real runner via
``medllm_core.testing``. Nothing is overwritten: an existing folder is an error.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medllm_core.kernel.errors import ConfigError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{1,40}$")


@dataclass(frozen=True)
class PluginNames:
    stage: str  # stage name, [stages.<stage>] table and entry-point name: my_stage
    package: str  # import name: medllm_my_stage
    dist: str  # distribution and folder name: medllm-my-stage
    title: str  # class-name prefix: MyStage


def plugin_names(name: str) -> PluginNames:
    if not NAME_PATTERN.match(name):
        raise ConfigError(f"plugin name '{name}' is not usable",
                          hint="use 2-41 lowercase letters, digits, '_' or '-', starting with a letter, e.g. my_stage")
    stage = name.replace("-", "_").strip("_")
    if keyword.iskeyword(stage):
        raise ConfigError(f"plugin name '{name}' is a Python keyword")
    stage = stage.removeprefix("medllm_") or stage  # 'medllm-foo' and 'foo' give the same package
    title = "".join(part.capitalize() for part in stage.split("_") if part)
    return PluginNames(stage=stage, package=f"medllm_{stage}", dist=f"medllm-{stage.replace('_', '-')}", title=title)


def create_plugin(name: str, parent: Path) -> Path:
    """Write the package folder under ``parent``; return it."""
    from medllm_tui.plugin_template import files

    names = plugin_names(name)
    root = parent / names.dist
    if root.exists():
        raise ConfigError(f"{root} already exists; choose another name or folder (nothing was written)")
    values = {"stage": names.stage, "package": names.package, "dist": names.dist, "title": names.title}
    for relative, template in files(names.package).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values), encoding="utf-8")
    return root


def command_plugin(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="medllm-tui plugin", description="Tools for writing plugins.")
    sub = parser.add_subparsers(dest="action", required=True)
    new = sub.add_parser("new", help="create an installable plugin package with one stage and its tests")
    new.add_argument("name", help="stage name, e.g. my_stage (package medllm_my_stage, folder medllm-my-stage)")
    new.add_argument("--dir", default=".", help="folder to create the package in (default: current folder)")
    args = parser.parse_args(argv)
    root = create_plugin(args.name, Path(args.dir))
    names = plugin_names(args.name)
    print(f"created {root}/ (stage '{names.stage}', package {names.package})")
    # The interpreter running this command is the environment the plugin must be installed into.
    python = sys.executable
    print("next (see docs/plugins.md):")
    print(f"  {python} -m pip install -e {root}")
    print(f"  {python} -m medllm_tui plugins")
    print(f"  {python} -m pytest {root}")
    return 0
