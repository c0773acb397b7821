"""Command-line programs built on the lobes (no lobe imports this package)."""
