"""The kernel: stage contract, graph, runner, plugin manager, profile, events, resume.

Never imports the stage library (medllm_core.library), the built-in plugins or the UI; a contract test says so.
"""
