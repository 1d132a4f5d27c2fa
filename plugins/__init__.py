"""Built-in stage plugins. Each registers through the same public hook a third party uses."""
