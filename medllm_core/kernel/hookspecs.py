"""The public plugin hooks. Built-in stages use exactly these.

Hooks are callback-shaped (``register_*(register)``) so a plugin calls
``register`` once per thing it adds, and the host can attribute each
registration to the plugin that made it.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from medllm_core.kernel.stages import StageSpec

PROJECT_NAME = "medllm"
ENTRY_POINT_GROUP = "medllm.plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_stages(register: Callable[[StageSpec], None]) -> None:
    """Register pipeline stages by calling ``register(StageSpec(...))`` once per stage.

    Called once per run, after all plugins are loaded. The stage's ``settings``
    dataclass defines the keys its ``[stages.<name>]`` profile table accepts.
    """
