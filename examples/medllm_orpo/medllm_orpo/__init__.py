"""Example medllm plugin: ORPO from the SFT model (see plugin.py for the registration)."""
