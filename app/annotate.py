"""Blind pairwise annotation: the queue, recording judgements, RM-vs-human results and exports.

An *item* is one prompt with two responses, named by its references in sorted order
(``"gold|negative:17"`` or ``"negative:40|negative:41"``), so every annotator sees the same
items and agreement can be measured. Which response is shown on the left is a deterministic coin
flip per (item, annotator): randomised, but stable across reruns. Choices are stored as the
store's a / b / tie / both_bad, with each side's reference, so the winner is always recoverable.
"""

from __future__ import annotations

import json
import random
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from app import stats
from db import queries

MODES = ("golden vs negative", "PM samples")
ORDERS = ("lowest SEAM first", "random")
CHOICES = {"1": "a", "2": "b", "t": "tie", "b": "both_bad"}
QUEUE_SCAN = 5000  # instructions considered for a queue

GUIDELINES = """\
**Which response answers the prompt better?** Judge as a careful user would.

1. **Correctness first.** A response that answers the question correctly beats one that does not,
   whatever its style. A hedge that names a wrong answer next to the right one is not correct.
2. **Then helpfulness:** complete, on topic, no padding or irrelevant text.
3. **Then form:** grammar, clarity, a full sentence where one was asked for.
4. **Tie** (`t`) when both are about equally good; **both bad** (`b`) when neither answers
   acceptably; **skip** (`s`) when you cannot judge (you will not see it again this session).

Responses are shown in random order and without any model scores. Don't overthink: a few
seconds per pair is normal.
"""


@dataclass
class Side:
    text: str
    ref: str
    rm: float | None


@dataclass
class Item:
    instruction_id: int
    ext_id: str
    prompt: str
    left: Side
    right: Side
    key: str
    mode: str
    variant: str | None
    seam: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def flip(key: str, annotator: str) -> bool:
    return bool(zlib.crc32(f"{key}\x1f{annotator}".encode()) & 1)


def _pick(n: int, salt: str) -> int:
    return zlib.crc32(salt.encode()) % n


def instruction_order(store, run_id: int, variant: str, order: str, seed: int = 0) -> list[int]:  # noqa: ANN001
    ids = queries.ordered_instructions(store, run_id, variant, limit=QUEUE_SCAN)["instruction_id"].tolist()
    if order == ORDERS[1]:
        random.Random(seed).shuffle(ids)
    return [int(i) for i in ids]


def _make(store, inst_id: int, a: Side, b: Side, mode: str, variant: str | None, annotator: str,  # noqa: ANN001
          seam: float | None) -> Item:
    first, second = sorted((a, b), key=lambda s: s.ref)
    key = f"{first.ref}|{second.ref}"
    left, right = (second, first) if flip(key, annotator) else (first, second)
    inst = queries.instruction(store, inst_id)
    return Item(inst_id, inst["id"], inst["prompt"], left, right, key, mode, variant, seam)


def next_item(store, run: dict, mode: str, variant: str, order: str, annotator: str,  # noqa: ANN001
              skipped: set[str], seed: int = 0) -> Item | None:
    """The first item of the queue this annotator has neither judged nor skipped (None when done)."""
    done = queries.annotated_keys(store, annotator)
    done_keys = {k for _, k in done} | set(skipped)
    run_id = int(run["id"])
    if mode == MODES[0]:
        seams = queries.ordered_instructions(store, run_id, variant, limit=QUEUE_SCAN).set_index("instruction_id")["seam"]
        for inst_id in instruction_order(store, run_id, variant, order, seed):
            negs = queries.breakdown(store, run_id, inst_id, variant)
            negs = negs[negs["negative_id"].notna()]
            if negs.empty:
                continue
            neg = negs.iloc[_pick(len(negs), f"{inst_id}:{variant}")]
            key = f"gold|negative:{int(neg['negative_id'])}"
            if key in done_keys:
                continue
            inst = queries.instruction(store, inst_id)
            gold = Side(inst["chosen"], "gold", float(neg["rm_gold"]) if neg["rm_gold"] is not None else None)
            other = Side(str(neg["text"]), f"negative:{int(neg['negative_id'])}", float(neg["rm_neg"]))
            return _make(store, inst_id, gold, other, mode, variant, annotator, float(seams.get(inst_id, np.nan)))
        return None
    samples = queries.policy_samples(store, int(run["dataset_id"]))
    if samples.empty:
        return None
    by_inst = {int(k): g for k, g in samples.groupby("instruction_id") if len(g) >= 2}
    ranked = [i for i in instruction_order(store, run_id, variant, ORDERS[0]) if i in by_inst]
    rest = sorted(set(by_inst) - set(ranked))
    ids = ranked + rest
    if order == ORDERS[1]:
        random.Random(seed).shuffle(ids)
    seam_of = queries.seams_for(store, run_id, variant, ids[:200])
    for inst_id in ids:
        g = by_inst[inst_id].sort_values("neg_index").head(2)
        sides = [Side(str(r.text), f"negative:{int(r.negative_id)}", (r.meta or {}).get("rm_reward"))
                 for r in g.itertuples()]
        key = "|".join(sorted(s.ref for s in sides))
        if key in done_keys:
            continue
        return _make(store, inst_id, sides[0], sides[1], mode, None, annotator, seam_of.get(inst_id))
    return None


def queue_size(store, run: dict, mode: str, variant: str) -> int:  # noqa: ANN001
    if mode == MODES[0]:
        return queries.explore_count(store, int(run["id"]), variant)
    samples = queries.policy_samples(store, int(run["dataset_id"]))
    return int((samples.groupby("instruction_id").size() >= 2).sum()) if len(samples) else 0


def record(store, item: Item, key: str, annotator: str, run_id: int, duration_s: float | None) -> int:  # noqa: ANN001
    """Store the judgement for keyboard key 1 / 2 / t / b; returns the annotation id."""
    meta = {"item": item.key, "mode": item.mode, "variant": item.variant, "rm_a": item.left.rm, "rm_b": item.right.rm,
            "seam": None if item.seam is None or np.isnan(item.seam) else item.seam, "shown_left": item.left.ref}
    return store.add_annotation(item.instruction_id, item.left.text, item.right.text, CHOICES[key], annotator,
                                source="human", response_a_ref=item.left.ref, response_b_ref=item.right.ref,
                                score_run_id=run_id, duration_s=duration_s, meta=meta)


# --- results --------------------------------------------------------------------------------------

def judgements(store, run_id: int, variant: str) -> pd.DataFrame:  # noqa: ANN001
    """Annotations of a run with the human's winner, the RM's winner and whether they disagree.

    RM rewards come from the annotation's meta (rm_a / rm_b) or, failing that, from the run's
    stored scores for the sides' references (gold and negative:<id>); SEAM of `variant` is looked
    up per instruction. Columns added: label (first / second / tie / both_bad, over the sorted
    references), human_winner, rm_winner, mismatch (NaN when either side has no winner), seam.
    """
    df = queries.annotations(store, score_run_id=run_id)
    if df.empty:
        return df
    refs = pd.concat([df["response_a_ref"], df["response_b_ref"]]).dropna()
    neg_ids = [int(r.split(":")[1]) for r in refs if str(r).startswith("negative:") and r.split(":")[1].isdigit()]
    rm_neg, rm_gold = queries.rewards_for_refs(store, run_id, neg_ids, df["instruction_id"].tolist())
    seams = queries.seams_for(store, run_id, variant, df["instruction_id"].tolist())

    def reward(ref: Any, inst: int, stored: Any) -> float | None:
        if stored is not None and not (isinstance(stored, float) and np.isnan(stored)):
            return float(stored)
        if ref == "gold":
            return rm_gold.get(int(inst))
        if isinstance(ref, str) and ref.startswith("negative:") and ref.split(":")[1].isdigit():
            return rm_neg.get(int(ref.split(":")[1]))
        return None

    rows = []
    for r in df.itertuples():
        m = r.meta or {}
        ra, rb = reward(r.response_a_ref, r.instruction_id, m.get("rm_a")), reward(r.response_b_ref, r.instruction_id, m.get("rm_b"))
        a_ref, b_ref = r.response_a_ref or "a", r.response_b_ref or "b"
        item = m.get("item") or "|".join(sorted((a_ref, b_ref)))
        first = sorted((a_ref, b_ref))[0]
        human = a_ref if r.choice == "a" else b_ref if r.choice == "b" else None
        rm = None if ra is None or rb is None or ra == rb else (a_ref if ra > rb else b_ref)
        label = r.choice if human is None else ("first" if human == first else "second")
        rows.append({"item": item, "label": label, "human_winner": human, "rm_winner": rm, "rm_a": ra, "rm_b": rb,
                     "mismatch": np.nan if human is None or rm is None else float(human != rm),
                     "seam": seams.get(int(r.instruction_id), m.get("seam")), "mode": m.get("mode") or "-"})
    return pd.concat([df.reset_index(drop=True), pd.DataFrame(rows)], axis=1)


def mismatch(j: pd.DataFrame) -> stats.Interval:
    x = j["mismatch"].dropna() if len(j) else pd.Series(dtype=float)
    return stats.wilson_ci(int(x.sum()), len(x))


def mismatch_table(j: pd.DataFrame) -> pd.DataFrame:
    """Mismatch rate with a 95% Wilson interval per source and mode (the paper's Figure 4)."""
    out = []
    for (source, mode), g in j.groupby(["source", "mode"]):
        ci = mismatch(g)
        out.append({"source": source, "mode": mode, "judged": len(g), "decisive": ci.n, "mismatch": ci.estimate,
                    "ci_low": ci.low, "ci_high": ci.high})
    return pd.DataFrame(out)


def agreement(j: pd.DataFrame) -> dict[str, Any]:
    """Cohen's kappa per annotator pair and Fleiss' kappa over items judged by two or more annotators."""
    if j.empty:
        return {"pairs": pd.DataFrame(), "fleiss": float("nan"), "items": 0}
    last = j.sort_values("id").drop_duplicates(["item", "annotator"], keep="last")
    table = last.pivot(index="item", columns="annotator", values="label")
    names = list(table.columns)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = table[[a, b]].dropna()
            if len(both):
                pairs.append({"annotator A": a, "annotator B": b, "items": len(both),
                              "agreement": float((both[a] == both[b]).mean()),
                              "cohen_kappa": stats.cohen_kappa(both[a].tolist(), both[b].tolist())})
    multi = table[table.notna().sum(axis=1) >= 2]
    cats = sorted(set(last["label"]))
    counts = np.array([[int((row == c).sum()) for c in cats] for _, row in multi.iterrows()]) if len(multi) else np.zeros((0, 0))
    return {"pairs": pd.DataFrame(pairs), "fleiss": stats.fleiss_kappa(counts) if len(multi) else float("nan"),
            "items": len(multi)}


def seam_auroc(j: pd.DataFrame) -> tuple[float, int]:
    """AUROC of -SEAM for predicting an RM-vs-human mismatch (1.0: lower SEAM always means mismatch)."""
    ok = j.dropna(subset=["mismatch", "seam"]) if len(j) else j
    if len(ok) == 0:
        return float("nan"), 0
    return stats.auroc(-ok["seam"].astype(float).to_numpy(), ok["mismatch"].astype(int).to_numpy()), len(ok)


# --- exports --------------------------------------------------------------------------------------

def _records(j: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for r in j.itertuples():
        out.append({"annotation_id": int(r.id), "instruction": r.id_ext, "prompt": r.prompt,
                    "response_a": r.response_a, "response_b": r.response_b,
                    "response_a_ref": r.response_a_ref, "response_b_ref": r.response_b_ref,
                    "choice": r.choice, "annotator": r.annotator, "source": r.source,
                    "duration_s": None if r.duration_s is None or np.isnan(r.duration_s) else float(r.duration_s),
                    "created_at": str(r.created_at), "score_run_id": None if pd.isna(r.score_run_id) else int(r.score_run_id),
                    "rm_a": r.rm_a, "rm_b": r.rm_b, "seam": r.seam, "mismatch": None if np.isnan(r.mismatch) else bool(r.mismatch)})
    return out


def to_jsonl(j: pd.DataFrame) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in _records(j))


ARGILLA_LABELS = ("response_a", "response_b", "tie", "both_bad")
ARGILLA_METADATA = {"instruction": "terms", "annotator": "terms", "source": "terms", "response_a_ref": "terms",
                    "response_b_ref": "terms", "duration_s": "float"}
ANNOTATOR_NAMESPACE = uuid.UUID("5e2a3f3c-0b7e-5c55-9a35-5ea3a4d1a7e1")  # uuid5 namespace of annotator ids


def annotator_uuid(name: str) -> str:
    """A stable UUID for an annotator name (Argilla responses need a user UUID; the name stays in
    the record's `annotator` metadata so the ids can be mapped to real Argilla users before upload)."""
    return str(uuid.uuid5(ANNOTATOR_NAMESPACE, str(name)))


def argilla_settings() -> dict[str, Any]:
    """Argilla 2.x dataset settings in the layout of `rg.Settings.serialize()` / `rg.Settings.from_json`:
    text fields prompt / response_a / response_b, a `preference` label question, typed metadata."""
    fields = [{"name": n, "title": n, "required": True, "description": None,
               "settings": {"type": "text", "use_markdown": False}, "type": "text"}
              for n in ("prompt", "response_a", "response_b")]
    question = {"name": "preference", "title": "Which response answers the prompt better?",
                "description": "tie: about equally good; both_bad: neither is acceptable", "required": True,
                "settings": {"type": "label_selection", "options": [{"value": v, "text": v} for v in ARGILLA_LABELS],
                             "visible_options": len(ARGILLA_LABELS)},
                "type": "label_selection"}
    metadata = [{"name": n, "title": n, "visible_for_annotators": False,
                 "settings": {"type": t, "visible_for_annotators": False,
                              **({"values": None} if t == "terms" else {"min": None, "max": None})}}
                for n, t in ARGILLA_METADATA.items()]
    return {"guidelines": GUIDELINES, "questions": [question], "fields": fields, "vectors": [], "metadata": metadata,
            "allow_extra_metadata": False, "distribution": {"strategy": "overlap", "min_submitted": 1}, "mapping": None}


def to_argilla(j: pd.DataFrame) -> str:
    """Argilla 2.x export: ``{"settings": ..., "records": [...]}``. `settings` loads with
    `rg.Settings.from_json` (saved to its own file) and each record with `rg.Record.from_dict`
    (fields, metadata, and the annotator's response with a UUID `user_id`, see `annotator_uuid`).
    One record per judgement: each annotator saw the pair in their own left/right order."""
    value = {"a": "response_a", "b": "response_b", "tie": "tie", "both_bad": "both_bad"}
    records = []
    for r in _records(j):
        meta = {"instruction": r["instruction"], "annotator": r["annotator"], "source": r["source"],
                "response_a_ref": r["response_a_ref"], "response_b_ref": r["response_b_ref"],
                "duration_s": r["duration_s"]}
        records.append({
            "id": str(r["annotation_id"]),
            "fields": {"prompt": r["prompt"], "response_a": r["response_a"], "response_b": r["response_b"]},
            "metadata": {k: v for k, v in meta.items() if v is not None},
            "responses": {"preference": [{"value": value[r["choice"]], "user_id": annotator_uuid(r["annotator"]),
                                          "status": "submitted"}]},
            "suggestions": {}, "vectors": {},
        })
    return json.dumps({"settings": argilla_settings(), "records": records}, ensure_ascii=False, indent=1, default=str)


LABEL_STUDIO_CONFIG = """<View>
  <Header value="$prompt"/>
  <Text name="response_a" value="$response_a"/>
  <Text name="response_b" value="$response_b"/>
  <Pairwise name="preference" toName="response_a,response_b"/>
  <Choices name="other" toName="response_a" choice="single">
    <Choice value="tie"/><Choice value="both_bad"/>
  </Choices>
</View>"""


def label_studio_user_ids(j: pd.DataFrame) -> dict[str, int]:
    """Default Label Studio user ids: annotators numbered 1..n in name order."""
    names = sorted({str(a) for a in j["annotator"]}) if len(j) else []
    return {name: i for i, name in enumerate(names, 1)}


def _iso(value: Any) -> str | None:
    try:
        return pd.Timestamp(value).isoformat()
    except (TypeError, ValueError):
        return None


def to_label_studio(j: pd.DataFrame, user_ids: dict[str, int] | None = None) -> str:
    """Label Studio tasks (import JSON) with their annotations, for the LABEL_STUDIO_CONFIG labelling
    config. `completed_by` is a Label Studio user id: `user_ids` maps annotator names to the ids of
    your Label Studio users (default `label_studio_user_ids`: 1..n by name); the name stays in the
    task's `annotator` data field. Pairwise results follow the SDK's `<Pairwise>` regions
    (from_name = to_name = the tag's name, value.selected left/right)."""
    ids = user_ids if user_ids is not None else label_studio_user_ids(j)
    tasks = []
    for n, r in enumerate(_records(j)):
        if r["choice"] in ("a", "b"):
            result = {"id": f"seam-{n}", "from_name": "preference", "to_name": "preference", "type": "pairwise",
                      "value": {"selected": "left" if r["choice"] == "a" else "right"}}
        else:
            result = {"id": f"seam-{n}", "from_name": "other", "to_name": "response_a", "type": "choices",
                      "value": {"choices": [r["choice"]]}}
        tasks.append({"data": {"prompt": r["prompt"], "response_a": r["response_a"], "response_b": r["response_b"],
                               "instruction": r["instruction"], "response_a_ref": r["response_a_ref"],
                               "response_b_ref": r["response_b_ref"], "annotator": r["annotator"]},
                      "annotations": [{"result": [result], "completed_by": int(ids[str(r["annotator"])]),
                                       "lead_time": r["duration_s"], "created_at": _iso(r["created_at"]),
                                       "ground_truth": False, "was_cancelled": False}]})
    return json.dumps(tasks, ensure_ascii=False, indent=1, default=str)
