"""`rules` backend: deterministic corruptions of the golden answer (no model; for tests and demos)."""

from __future__ import annotations

from .corrupt import FAMILY, corruptions


class RulesBackend:
    name = "rules"
    model_name = "rules"

    def __init__(self, cfg):
        self.cfg = cfg
        self.stats: dict = {}

    def propose(self, rows, need, round_, progress):
        out = []
        for i, (row, n) in enumerate(zip(rows, need)):
            if n <= 0:
                out.append([])
                continue
            found = corruptions(row.chosen, n, seed=self.cfg.seed + round_, key=row.id, prompt=row.prompt)
            out.append([(text, {"backend": "rules", "model": "rules", "kinds": kinds, "family": FAMILY[kinds[0]]})
                        for text, kinds in found])
            if progress:
                progress(i + 1, len(rows), f"rules round {round_ + 1}")
        return out
