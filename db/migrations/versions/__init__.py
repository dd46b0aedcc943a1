"""Schema revisions, oldest first. Add one with `python -m db revision -m "what changed"`."""
