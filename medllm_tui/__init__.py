"""The ``medllm-tui`` command: headless runner, tools, and (on demand) the Textual app."""
