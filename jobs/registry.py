"""Job kind name -> handler: what `seam worker` runs for each kind.

Only the worker reads this (it is handed the mapping, the way arq's ``Worker(functions=[...])`` is);
the queue stores kind names and knows no handlers. A new kind is a module in jobs/kinds/ with a
``handler(ctx, payload)`` function, added to `KINDS` below (see docs/jobs.md, "Adding a job kind").
Plug-ins and tests can add kinds at run time with `register_job_kind`.
"""

from __future__ import annotations

from seam.errors import SeamError

from .context import Handler
from .kinds.demo import demo_build
from .kinds.embed_map import embed_map
from .kinds.experiments import augment_ppo, filter_ppo
from .kinds.negatives import negatives_job
from .kinds.samples import generate_samples
from .kinds.score import score_job
from .kinds.synthetic import synthetic_score
from .kinds.validate_model import validate_model

KINDS: dict[str, Handler] = {
    "synthetic-score": synthetic_score,
    "score": score_job,
    "negatives": negatives_job,
    "validate-model": validate_model,
    "generate-samples": generate_samples,
    "embed-map": embed_map,
    "filter-ppo": filter_ppo,
    "augment-ppo": augment_ppo,
    "demo-build": demo_build,
}

_EXTRA: dict[str, Handler] = {}


def register_job_kind(name: str, handler: Handler, *, replace: bool = False) -> None:
    """Make `handler(ctx, payload)` run jobs of kind `name` (in this process's workers)."""
    if not replace and name in _EXTRA and _EXTRA[name] is not handler:
        raise ValueError(f"job kind {name!r} is already registered; pass replace=True to override it")
    _EXTRA[name] = handler


def handlers() -> dict[str, Handler]:
    """Every kind this install runs: the built-in ones and those registered at run time."""
    return {**KINDS, **_EXTRA}


def job_kinds() -> list[str]:
    return sorted(handlers())


def get_handler(kind: str) -> Handler:
    handler = handlers().get(kind)
    if handler is None:
        raise SeamError(f"unknown job kind {kind!r}; this worker knows {', '.join(job_kinds())}")
    return handler
