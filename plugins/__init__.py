"""Built-in stage plugins. Each registers through the same public hook a third party uses.

``BUILTIN_MODULES`` is the load order (the plugin manager reads it; each name is
also the plugin's name for ``MEDLLM_BLOCK_PLUGINS``).
"""

BUILTIN_MODULES = (
    "preflight",
    "sft",
    "dpo",
    "simpo",
    "kto",
    "evaluation",
    "judges",
    "completion_check",
    "method_comparison",
    "thesis_reports",
)
