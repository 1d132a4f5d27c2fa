from medllm_tui.cli import entry

entry()
