"""medllm core: everything that is not UI. Never imports Textual."""

__version__ = "0.1.0"
