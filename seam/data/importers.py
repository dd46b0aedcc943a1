"""Importers: public preference datasets -> the instructions contract (id, prompt, chosen, rejected, meta).

A registry maps a name to a function ``(source, config, stats) -> iterator of rows``; rows stream
straight into `write_rows`, so a multi-GB source needs little memory. `run_import` ties it
together (atomic write, --limit, stats). Names: ``stackexchange`` (Posts.xml), ``hh`` (HH-RLHF
transcripts), ``shp`` (Stanford Human Preferences), ``trl`` (TRL preference / prompt-completion /
conversational layouts), ``seam-json`` (SEAM / stack-exchange-paired JSON), ``hf`` (an HF
``save_to_disk`` folder, or any table, with the layout detected from its columns).

Skipped counts are counted in source rows (posts for stackexchange) and always reported.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SeamError
from ..io import atomic_output
from .chat import MESSAGES_KEY, as_messages, is_messages, last_assistant, render_messages
from .stackexchange import iter_stackexchange_pairs
from .tables import check_output_path, iter_records, table_format, write_rows

HH_ASSISTANT = "\n\nAssistant:"


@dataclass
class ImportConfig:
    """Options shared by the importers (each uses the ones that apply to it)."""

    limit: int | None = None  # stop after writing this many rows
    min_answers: int = 2  # stackexchange: skip questions with fewer answers (at least 2)
    max_pairs_per_question: int | None = None  # stackexchange: keep at most this many pairs per question
    site: str | None = None  # stackexchange: id prefix (default: from the file name, e.g. "beer")
    split: str | None = None  # HF DatasetDict folders: which split to read

    def __post_init__(self):
        for name, flag, low in (("limit", "--limit", 1), ("max_pairs_per_question", "--max-pairs-per-question", 1)):
            value = getattr(self, name)
            if value is not None and value < low:
                raise SeamError(f"{flag} must be at least {low}, got {value}")
        if self.min_answers < 2:
            raise SeamError(f"--min-answers must be at least 2 (a pair needs two answers), got {self.min_answers}")


@dataclass
class ImportStats:
    """What an import did: rows read, rows written, rows skipped by reason."""

    importer: str
    source: str
    rows_read: int = 0
    pairs_written: int = 0
    skipped: Counter = field(default_factory=Counter)
    extra: dict[str, Any] = field(default_factory=dict)

    def skip(self, reason: str, n: int = 1) -> None:
        if n:
            self.skipped[reason] += n

    def as_dict(self) -> dict[str, Any]:
        return {
            "importer": self.importer, "source": self.source, "rows_read": self.rows_read,
            "pairs_written": self.pairs_written, "rows_skipped": sum(self.skipped.values()),
            "skipped": dict(self.skipped.most_common()), **self.extra,
        }


Importer = Callable[[Path, ImportConfig, ImportStats], Iterator[dict]]
IMPORTERS: dict[str, Importer] = {}


def register_importer(name: str) -> Callable[[Importer], Importer]:
    def add(fn: Importer) -> Importer:
        IMPORTERS[name] = fn
        return fn

    return add


class _Skip(Exception):
    """This source row cannot become an instruction row (counted under `reason`)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _Layout(_Skip):
    """The row does not have the importer's layout; on the first row this is a user error."""

    def __init__(self, reason: str, hint: str = ""):
        super().__init__(reason)
        self.hint = hint


@dataclass
class _Context:
    stem: str  # id prefix from the source name
    unit: str = "row"  # "line" for JSONL sources, "item" for JSON arrays, else "row"
    per_key: Counter = field(default_factory=Counter)


# ------------------------------------------------------------------------------- row converters


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _scalar_id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, str)) and str(value).strip():
        return str(value).strip()
    return None


def split_hh(transcript: str) -> tuple[str, str] | None:
    """Split an HH-RLHF transcript at its last Assistant turn: (dialogue before it, reply)."""
    cut = transcript.rfind(HH_ASSISTANT)
    if cut < 0:
        return None
    return transcript[:cut].strip(), transcript[cut + len(HH_ASSISTANT):].strip()


def hh_row(rec: dict, n: int, ctx: _Context) -> dict:
    """HH-RLHF: prompt = the dialogue up to the last "\\n\\nAssistant:" (marker dropped,
    "Human:"/"Assistant:" labels kept); chosen/rejected = the two last Assistant replies."""
    chosen, rejected = rec.get("chosen"), rec.get("rejected")
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        raise _Layout(
            "needs 'chosen' and 'rejected' transcript strings", "for other layouts use `seam import hf` (auto-detect)"
        )
    c, r = split_hh(chosen), split_hh(rejected)
    if c is None or r is None:
        raise _Layout(
            "transcript has no '\\n\\nAssistant:' turn",
            "HH transcripts look like '\\n\\nHuman: ...\\n\\nAssistant: ...'; "
            "for prompt/chosen/rejected files use `seam import trl`",
        )
    if c[0] != r[0]:
        raise _Skip("chosen and rejected transcripts have different prompts")
    if not c[0]:
        raise _Skip("empty prompt")
    if not c[1]:
        raise _Skip("empty chosen reply")
    if not r[1]:
        raise _Skip("empty rejected reply")
    if c[1] == r[1]:
        raise _Skip("chosen and rejected replies are identical")
    meta = {"source": "hh-rlhf", ctx.unit: n}
    return {"id": f"{ctx.stem}-{n}", "prompt": c[0], "chosen": c[1], "rejected": r[1], "meta": meta}


def _number(value: Any) -> Any:
    """An int where the value is a whole number (CSV text, pandas floats), else the value."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() else number


def shp_row(rec: dict, n: int, ctx: _Context) -> dict:
    """SHP: prompt = history; labels 1 means human_ref_A is preferred over human_ref_B."""
    needed = ("history", "human_ref_A", "human_ref_B", "labels")
    if any(k not in rec for k in needed):
        raise _Layout(
            f"needs columns {', '.join(needed)}", "SHP files have post_id, history, human_ref_A, human_ref_B, labels"
        )
    try:
        label = int(rec["labels"])
    except (TypeError, ValueError):
        label = -1
    if label not in (0, 1):
        raise _Skip("labels is not 0 or 1")
    prompt, a, b = _text(rec["history"]), _text(rec["human_ref_A"]), _text(rec["human_ref_B"])
    if not prompt:
        raise _Skip("empty prompt")
    if not a or not b:
        raise _Skip("empty response")
    if label == 1:
        chosen, rejected, cs, rs = a, b, rec.get("score_A"), rec.get("score_B")
    else:
        chosen, rejected, cs, rs = b, a, rec.get("score_B"), rec.get("score_A")
    if chosen == rejected:
        raise _Skip("chosen and rejected are identical")
    post = _scalar_id(rec.get("post_id")) or str(n)
    ca, cb = _scalar_id(rec.get("c_root_id_A")), _scalar_id(rec.get("c_root_id_B"))
    rid = f"shp-{post}-{ca}-{cb}" if ca and cb else f"shp-{post}-{n}"
    meta = {"source": "shp", "post_id": post, "domain": rec.get("domain"),
            "chosen_score": _number(cs), "rejected_score": _number(rs)}
    meta = {k: v for k, v in meta.items() if v is not None}
    return {"id": rid, "prompt": prompt, "chosen": chosen, "rejected": rejected, "meta": meta}


def _messages_or_text(value: Any) -> tuple[list[dict] | None, str]:
    """(messages, response text) of a TRL completion column: a message list ending in an assistant
    turn gives its exact content; a string gives itself, stripped."""
    msgs = as_messages(value)
    if msgs is None:
        return None, _text(value)
    reply = last_assistant(msgs)
    return msgs, (reply if reply is not None and reply.strip() else "")


def trl_row(rec: dict, n: int, ctx: _Context) -> dict:
    """TRL layouts: preference (prompt/chosen/rejected, strings or messages; implicit-prompt
    conversational chosen/rejected), prompt-completion (SFT; unpaired `label` true only), and
    `messages` (SFT conversation). Conversational rows keep their conversation (system prompt and
    earlier turns) in meta["messages"]; `prompt` is its readable rendering (seam.data.chat)."""
    prompt_value, rejected, convo = rec.get("prompt"), None, None
    if "messages" in rec and "chosen" not in rec:
        msgs = as_messages(rec["messages"])
        if msgs is None:
            raise _Layout("'messages' is not a list of {role, content} messages")
        convo, (_, chosen) = msgs[:-1], _messages_or_text(msgs)
    elif "chosen" in rec:
        chosen_msgs, chosen = _messages_or_text(rec.get("chosen"))
        rejected_value = rec.get("rejected")
        if prompt_value is None and chosen_msgs is None:
            raise _Layout(
                "no 'prompt' column and 'chosen' is not a message list",
                "TRL's implicit-prompt form needs conversational chosen/rejected; "
                "HH transcripts import with `seam import hh`",
            )
        convo = as_messages(prompt_value)
        if convo is None and chosen_msgs is not None and len(chosen_msgs) > 1:
            convo = chosen_msgs[:-1]  # implicit prompt: the conversation before the reply
        _, rejected = _messages_or_text(rejected_value)
        rejected = rejected or None
        if rejected_value is not None and not rejected:
            raise _Skip("empty rejected")
    elif "completion" in rec:
        if "label" in rec and not rec["label"]:
            raise _Skip("unpaired rows labelled undesirable (label false)")
        convo = as_messages(prompt_value)
        _, chosen = _messages_or_text(rec["completion"])
    else:
        raise _Layout("needs 'chosen' (preference), 'completion' (prompt-completion) or 'messages'")
    prompt = render_messages(convo) if convo else _text(prompt_value)
    if not prompt:
        raise _Skip("empty prompt")
    if not chosen:
        raise _Skip("empty chosen")
    if rejected is not None and rejected == chosen:
        raise _Skip("chosen and rejected are identical")
    meta = rec.get("meta") if isinstance(rec.get("meta"), dict) else {}
    meta = {**meta, "source": meta.get("source", "trl")}
    if convo:
        meta[MESSAGES_KEY] = convo
    return {"id": _scalar_id(rec.get("id")) or f"{ctx.stem}-{n}", "prompt": prompt, "chosen": chosen,
            "rejected": rejected, "meta": meta}


# SEAM reference / stack-exchange-paired JSON: first key present wins
SEAM_PROMPT_KEYS = ("question", "instruction", "prompt", "query")
SEAM_CHOSEN_KEYS = ("response_j", "chosen", "output", "response", "answer")
SEAM_REJECTED_KEYS = ("response_k", "rejected")


def _first(rec: dict, keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in keys:
        if key in rec and rec[key] is not None:
            return key, rec[key]
    return None, None


def seam_json_row(rec: dict, n: int, ctx: _Context) -> dict:
    """SEAM / stack-exchange-paired JSON: prompt from question|instruction(+input)|prompt|query,
    chosen from response_j|chosen|output|response|answer, rejected from response_k|rejected;
    id from id, else qid (numbered per qid), else the row number."""
    pkey, prompt = _first(rec, SEAM_PROMPT_KEYS)
    ckey, chosen = _first(rec, SEAM_CHOSEN_KEYS)
    if pkey is None or ckey is None:
        raise _Layout(
            f"needs a prompt key ({'|'.join(SEAM_PROMPT_KEYS)}) and a chosen key ({'|'.join(SEAM_CHOSEN_KEYS)})"
        )
    prompt = _text(prompt)
    if pkey == "instruction" and _text(rec.get("input")):
        prompt = f"{prompt}\n\n{_text(rec['input'])}".strip()
    chosen = _text(chosen)
    _, rejected = _first(rec, SEAM_REJECTED_KEYS)
    rejected = _text(rejected) or None
    if not prompt:
        raise _Skip("empty prompt")
    if not chosen:
        raise _Skip("empty chosen")
    if rejected is not None and rejected == chosen:
        raise _Skip("chosen and rejected are identical")
    rid = _scalar_id(rec.get("id"))
    qid = _scalar_id(rec.get("qid"))
    if rid is None and qid is not None:
        ctx.per_key[qid] += 1
        rid = f"{qid}-{ctx.per_key[qid]}"
    meta = {"source": "seam-json"}
    if qid is not None:
        meta["qid"] = qid
    for key in ("date", "metadata"):
        if rec.get(key) is not None:
            meta[key] = rec[key]
    if isinstance(rec.get("meta"), dict):
        meta = {**rec["meta"], **meta}
    return {"id": rid or f"{ctx.stem}-{n}", "prompt": prompt, "chosen": chosen, "rejected": rejected, "meta": meta}


_CONVERTERS = {"hh": hh_row, "shp": shp_row, "trl": trl_row, "seam-json": seam_json_row}


def detect_layout(record: dict) -> str:
    """Which row converter fits a record, from its keys (used by the `hf` importer)."""
    keys = set(record)
    if {"history", "human_ref_A", "human_ref_B", "labels"} <= keys:
        return "shp"
    if keys & {"response_j", "response_k", "question", "instruction"}:
        return "seam-json"
    if "messages" in keys or "completion" in keys or {"prompt", "chosen"} <= keys:
        return "trl"
    if {"chosen", "rejected"} <= keys:
        return "trl" if is_messages(record["chosen"]) else "hh"
    raise SeamError(
        f"cannot tell the layout from the columns ({', '.join(sorted(keys)) or 'none'}); expected HH (chosen, rejected "
        "transcripts), SHP (history, human_ref_A, human_ref_B, labels), TRL (prompt, chosen[, rejected] | completion | "
        "messages) or SEAM JSON (question, response_j, response_k)"
    )


def _stem(path: Path) -> str:
    name = path.name
    for _ in range(2):
        base, dot, ext = name.rpartition(".")
        if dot and ext.lower() in ("gz", "jsonl", "json", "ndjson", "csv", "parquet", "pq"):
            name = base
    return name or "row"


def _convert(source: Path, config: ImportConfig, stats: ImportStats, layout: str | None) -> Iterator[dict]:
    ctx = _Context(_stem(source))
    seen: set[str] = set()
    convert = _CONVERTERS.get(layout) if layout else None
    first = True
    for unit, n, rec in iter_records(source, split=config.split):
        stats.rows_read += 1
        ctx.unit = unit
        if convert is None:
            try:
                layout = detect_layout(rec)
            except SeamError as exc:
                raise SeamError(f"{source} {unit} {n}: {exc}") from None
            stats.extra["layout"] = layout
            convert = _CONVERTERS[layout]
        try:
            row = convert(rec, n, ctx)
        except _Layout as exc:
            if first:
                hint = f"; {exc.hint}" if exc.hint else ""
                raise SeamError(
                    f"{source} {unit} {n}: not the {layout} layout: {exc.reason} (keys found: "
                    f"{', '.join(map(str, rec)) or 'none'}){hint}"
                ) from None
            stats.skip(f"rows not in the {layout} layout ({exc.reason})")
            continue
        except _Skip as exc:
            stats.skip(exc.reason)
            continue
        finally:
            first = False
        if row["id"] in seen:
            stats.skip("duplicate id")
            continue
        seen.add(row["id"])
        yield row


def _record_importer(layout: str | None) -> Importer:
    def run(source: Path, config: ImportConfig, stats: ImportStats) -> Iterator[dict]:
        return _convert(source, config, stats, layout)

    return run


register_importer("hh")(_record_importer("hh"))
register_importer("shp")(_record_importer("shp"))
register_importer("trl")(_record_importer("trl"))
register_importer("seam-json")(_record_importer("seam-json"))
register_importer("hf")(_record_importer(None))  # layout detected from the first row


@register_importer("stackexchange")
def import_stackexchange(source: Path, config: ImportConfig, stats: ImportStats) -> Iterator[dict]:
    if source.is_dir():
        if not (source / "Posts.xml").is_file():
            raise SeamError(f"{source}: a folder without Posts.xml; pass the Posts.xml file of a StackExchange dump")
        source = source / "Posts.xml"
    return iter_stackexchange_pairs(
        source, stats, site=config.site, min_answers=config.min_answers,
        max_pairs_per_question=config.max_pairs_per_question,
    )


# ----------------------------------------------------------------------------------------- driver


def iter_import(name: str, source: str | os.PathLike, config: ImportConfig | None = None,
                stats: ImportStats | None = None) -> Iterator[dict]:
    """Stream the instruction rows of an import (stops after ``config.limit`` rows)."""
    if name not in IMPORTERS:
        raise SeamError(f"unknown importer {name!r}; choose one of {', '.join(sorted(IMPORTERS))}")
    config = config or ImportConfig()
    source = Path(source)
    if not source.exists():
        raise SeamError(f"{source}: file not found; check the SOURCE path (relative paths start at {Path.cwd()})")
    if source.is_file() and source.stat().st_size == 0:
        raise SeamError(f"{source}: file is empty (0 bytes); re-download or re-export it")
    stats = stats if stats is not None else ImportStats(name, str(source))
    for row in IMPORTERS[name](source, config, stats):
        yield row
        stats.pairs_written += 1
        if config.limit is not None and stats.pairs_written >= config.limit:
            stats.extra["stopped_at_limit"] = config.limit
            return


def run_import(name: str, source: str | os.PathLike, out: str | os.PathLike,
               config: ImportConfig | None = None, progress: bool = False) -> dict[str, Any]:
    """Import `source` with importer `name` and write the instructions to `out` atomically.

    Returns the stats dict (importer, source, rows_read, pairs_written, rows_skipped, skipped by
    reason, plus importer extras). Raises `SeamError` (and writes nothing) on bad input or when
    no row could be imported, or when `out` is `source`.
    """
    out = check_output_path(out, [("SOURCE", source)])
    stats = ImportStats(name, str(source))
    rows = iter_import(name, source, config, stats)
    if progress:
        from tqdm import tqdm

        rows = tqdm(rows, desc=f"import {name}", unit=" rows", disable=None)
    with atomic_output(out) as tmp:
        written = write_rows(rows, tmp, table_format(out), columns=["id", "prompt", "chosen", "rejected", "meta"])
        if written == 0:
            reasons = ", ".join(f"{r}: {c}" for r, c in stats.skipped.most_common(3)) or "no rows"
            raise SeamError(
                f"{source}: nothing to import ({stats.rows_read} rows read; skipped: {reasons}); "
                f"check that SOURCE is a {name} file"
            )
    stats_dict = stats.as_dict()
    stats_dict["out"] = str(out)
    return stats_dict
