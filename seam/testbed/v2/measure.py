"""Measure the planting on a small from-scratch RM: train it on `rm_pairs`, run `check_planting`.

The model tier: a byte-level BPE tokenizer trained on the world's RM-training text and a
LlamaForSequenceClassification with a few layers (from `seam.models.tiny.tiny_config`), trained
with the project's `seam.train.train_rm` for whole epochs over the pairs; probes are scored with the
project's scoring engine (`seam.models.scoring.RewardScorer`), as `seam score` scores them.

    python -m seam.testbed.v2.measure --seeds 0 1 --out /tmp/world-v2

writes, per seed, ``seed-S/{rm_pairs.jsonl, probes.jsonl, rm/, planting.json, planting.md}`` and prints the
per-skill table. It exits 1 when the check fails on any seed (the report is still written).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ...data import write_table
from ...errors import SeamError
from ...io import json_safe, write_json, write_text
from ...models.loading import load_rm
from ...models.scoring import RewardScorer
from ...models.templates import get_template
from ...models.tiny import build_tokenizer, save_fresh_llama
from ...train import train_rm
from ...train.config import RMConfig
from .planting import planting_report, probe_rows, report_markdown, rm_pairs
from .skills import WorldV2Config, build_world


@dataclass
class MeasureConfig:
    tasks_per_skill: int = 100
    flip_rate: float = 0.5
    balance_skills: bool = False
    other_per_task: int = 2
    surface_per_task: int | None = None
    vocab_size: int = 2048
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    epochs: float = 6.0
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 20
    threads: int = 2


def world_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on `texts` (the same builder and special tokens as `seam.models.tiny`)."""
    return build_tokenizer(vocab_size, texts)


def build_rm_base(out: Path, texts: list[str], cfg: MeasureConfig, seed: int) -> Path:
    """A fresh LlamaForSequenceClassification (1 label) and its tokenizer, saved to `out`."""
    tok = world_tokenizer(texts, cfg.vocab_size)
    return save_fresh_llama(out, tok, role="rm", hidden=cfg.hidden, layers=cfg.layers, heads=cfg.heads, seed=seed)


def train_world_rm(world, root: Path, cfg: MeasureConfig, say=print, progress=None):
    """Write the world's RM pairs and probes under `root`, train the small RM on the pairs; `progress(step,
    total steps)` is called at every logged step.

    Returns (TrainResult, pairs, probes, world seconds)."""
    t0 = time.time()
    seed = world.seed
    pairs = rm_pairs(world, flip_rate=cfg.flip_rate, other_per_task=cfg.other_per_task,
                     surface_per_task=cfg.surface_per_task, balance_skills=cfg.balance_skills)
    probes = probe_rows(world)
    write_table(pairs, root / "rm_pairs.jsonl")
    write_table(probes, root / "probes.jsonl")
    t_world = time.time() - t0
    texts = [t.prompt for t in world.splits["rm_train"]] + [r[k] for r in pairs for k in ("chosen", "rejected")]
    base = build_rm_base(root / "rm-base", texts, cfg, seed)
    shutil.rmtree(root / "rm", ignore_errors=True)
    rm_cfg = RMConfig(model=str(base), data=str(root / "rm_pairs.jsonl"), output_dir=str(root / "rm"),
                      num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
                      warmup_steps=cfg.warmup_steps, seed=seed, device="cpu", report_to="none", max_length=256,
                      logging_steps=25, disable_tqdm=True)
    say(f"seed {seed}: {len(pairs)} pairs ({sum(p['meta']['flipped'] for p in pairs)} flipped), {len(probes)} probes; "
        f"training {cfg.epochs} epochs ...")
    total = max(1, int(math.ceil(len(pairs) / cfg.batch_size) * cfg.epochs))
    callback = None if progress is None else (lambda step, metrics: progress(min(step, total), total))
    return train_rm(rm_cfg, metrics_callback=callback), pairs, probes, t_world


def planting_of(rm_dir, probes: list[dict]) -> tuple[dict, float]:
    """The planting report of the RM in `rm_dir` on `probes` (scored as `seam score` scores), and its seconds."""
    t1 = time.time()
    scorer = RewardScorer(load_rm(rm_dir, device="cpu"), get_template("stackllama"), batch_tokens=8192)
    report = planting_report(lambda p, r: scorer.score(p, r), probes)
    return report, time.time() - t1


def measure_seed(seed: int, root: Path, cfg: MeasureConfig, say=print) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    world = build_world(WorldV2Config(seed=seed, tasks_per_skill=cfg.tasks_per_skill))
    res, pairs, probes, t_world = train_world_rm(world, root, cfg, say)
    report, t_score = planting_of(res.output_dir, probes)
    report.update({
        "seed": seed, "config": asdict(cfg), "truth": world.truth(), "pairs": len(pairs),
        "flipped_pairs": int(sum(p["meta"]["flipped"] for p in pairs)), "rm_steps": res.steps,
        "rm_train_seconds": round(res.seconds, 1), "world_seconds": round(t_world, 1),
        "score_seconds": round(t_score, 1), "rm_final_loss": res.metrics.get("train_loss"),
        "command": f"python -m seam.testbed.v2.measure --seeds {seed}",
    })
    write_json(root / "planting.json", json_safe(report), indent=2)
    write_text(root / "planting.md", report_markdown(report) + "\n")
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", default="/tmp/world-v2")
    for f, v in asdict(MeasureConfig()).items():
        kind = (lambda x: x.lower() in ("1", "true", "yes")) if isinstance(v, bool) else (type(v) if v is not None else int)
        ap.add_argument("--" + f.replace("_", "-"), type=kind, default=v)
    args = ap.parse_args(argv)
    cfg = MeasureConfig(**{f: getattr(args, f) for f in asdict(MeasureConfig())})
    import torch

    torch.set_num_threads(cfg.threads)
    failed = []
    for seed in args.seeds:
        rep = measure_seed(seed, Path(args.out) / f"seed-{seed}", cfg, say=lambda m: print(m, file=sys.stderr, flush=True))
        print(f"\n## seed {seed}: {rep['message']}\n")
        print(f"RM: {rep['rm_steps']} steps in {rep['rm_train_seconds']} s; world {rep['world_seconds']} s; "
              f"probe scoring {rep['score_seconds']} s\n")
        print(report_markdown(rep), flush=True)
        if not rep["ok"]:
            failed.append(seed)
    summary = {"seeds": args.seeds, "failed": failed, "config": asdict(cfg)}
    print(json.dumps(summary))
    return 1 if failed else 0


def run_main(main) -> None:
    """A module entry point: `main()`'s exit code; a SeamError is one `error:` line and exit code 2."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        sys.exit(main())
    except SeamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run_main(main)
