"""SEAM Studio: measure the seamlessness between a reward model and a policy model (arXiv 2406.07971)."""

__version__ = "0.1.0"
