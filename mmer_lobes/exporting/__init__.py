"""Writing interface folders: the self-contained code bundle and the model card."""
