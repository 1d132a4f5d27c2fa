# The medllm test kit: the `medllm_run` fixture and friends.
pytest_plugins = ["medllm_core.testing"]
