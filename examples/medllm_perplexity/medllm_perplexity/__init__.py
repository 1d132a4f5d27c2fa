"""Example medllm plugin: held-out perplexity (see plugin.py for the registration)."""
