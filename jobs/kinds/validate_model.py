"""The `validate-model` job: load a registered checkpoint and run one forward pass through its template.

Payload ``{"model_id": int, "device": "auto"}``. Stores the fingerprint and a report on the model
row (``meta["validation"]``); the job result is the report. A checkpoint that fails to load fails
the job with the loader's message (also recorded on the model row).
"""

from __future__ import annotations

from typing import Any

from db.queries import set_model_validation
from seam.errors import SeamError

from ..context import JobContext
from .common import int_field, load_model, model_row


def validate_model(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    # lazy: these pull in torch and transformers, which the dashboard's import of the registry does not need
    from seam.models.scoring import PolicyScorer, RewardScorer
    from seam.models.templates import get_template

    store = ctx.store
    model_id = int_field(payload, "model_id", "validate-model")
    row = model_row(store, model_id)
    ctx.progress(0.1, f"loading {row['role'].upper()} {row['path']}", force=True)
    try:
        loaded = load_model(row, payload.get("device", "auto"))
        ctx.progress(0.7, "one forward pass")
        template = get_template(row.get("template") or "stackllama", loaded.tokenizer)
        prompt, response = "What is two plus two?", "Two plus two is four."
        if row["role"] == "pm":
            lp, tokens, _ = PolicyScorer(loaded, template).score([prompt], [response])
            check = {"prompt": prompt, "response": response, "logprob_mean": float(lp[0] / max(tokens[0], 1)),
                     "tokens": int(tokens[0])}
        else:
            check = {"prompt": prompt, "response": response,
                     "reward": float(RewardScorer(loaded, template).score([prompt], [response])[0])}
    except SeamError as exc:
        set_model_validation(store, model_id, fingerprint=None, report={"ok": False, "error": str(exc)})
        raise
    cfg = loaded.model.config
    report = {
        "ok": True,
        "fingerprint": loaded.fingerprint,
        "architecture": ", ".join(getattr(cfg, "architectures", None) or [type(loaded.model).__name__]),
        "model_type": getattr(cfg, "model_type", None),
        "parameters": int(sum(p.numel() for p in loaded.model.parameters())),
        "dtype": loaded.info.get("dtype"),
        "device": loaded.info.get("device"),
        "vocab_size": len(loaded.tokenizer),
        "eos_token": loaded.tokenizer.eos_token,
        "max_positions": getattr(cfg, "max_position_embeddings", None),
        "template": row.get("template"),
        "adapter": row.get("adapter"),
        "check": check,
    }
    set_model_validation(store, model_id, fingerprint=loaded.fingerprint, report=report)
    ctx.log(f"validated {row['name']}: {report['architecture']}, {report['parameters']:,} parameters, "
            f"{report['dtype']} on {report['device']}")
    return report
