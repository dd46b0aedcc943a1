"""adv negatives: the batched search (`--search batched`) against TextAttack's `greedy` recipe, side by side.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/adv_batch.py --n 200 --batched-budgets 100 --repeat 3
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/adv_batch.py --n 200 --batched-budgets 100 --repeat 3 \
        --hidden 256 --layers 4 --rm-dir /tmp/rm256

Setup (the same as benchmarks/negatives_bench.py's adv part): a small RM trained here in under a
minute on 2 CPU cores (a 2-layer Llama sequence classifier, hidden 128, from a config; BPE
tokenizer trained on the texts; pairwise loss on the demo world's 1,260 training preference pairs,
5 epochs), then N held-out pairs that the trained RM ranks correctly (so no start already fools
it), start = the pair's rejected answer. Both searches get the same RM, instructions, k, margin
and query budget per instruction. Reported per search: wall seconds, successful negatives per
instruction (kept negatives with R >= R(gold) + margin), success rate (instructions with at least
one), negatives per instruction, RM queries (all, gold and start scoring included), RM calls of
the batched search; then batched / textattack ratios. ``--repeat N`` runs each search N times,
interleaved, and reports the fastest wall time; ``--batched-budgets 100`` adds the batched search
at a budget of 100. ``--rm-dir DIR`` keeps the trained RM there and reuses it on the next run;
``--hidden 256 --layers 4`` trains a larger RM.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from negatives_bench import build_tokenizer, make_world, new_rm, pair_rewards, render, train_rm  # noqa: E402


def trained_rm(folder: Path, n_tasks: int = 700, epochs: int = 5, hidden: int = 128, layers: int = 2) -> dict:
    """Train (or reuse) the small RM in `folder`; returns the held-out pairs and how it was made."""
    import torch
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    train, test = make_world(n_tasks)
    info: dict = {"train_pairs": len(train), "test_pairs": len(test), "hidden": hidden, "layers": layers}
    if (folder / "config.json").is_file():
        tok = AutoTokenizer.from_pretrained(folder)
        model = LlamaForSequenceClassification.from_pretrained(folder).eval()
        info["train_seconds"] = None  # reused
    else:
        torch.manual_seed(0)
        tok = build_tokenizer([render(p["prompt"], p["chosen"]) for p in train + test]
                              + [p["rejected"] for p in train + test])
        model = new_rm(tok, hidden=hidden, layers=layers)
        t = time.perf_counter()
        train_rm(model, tok, train, epochs=epochs)
        info["train_seconds"] = round(time.perf_counter() - t, 1)
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
    c, r = pair_rewards(model, tok, test)
    info["test_accuracy"] = round(float((c > r).mean()), 3)
    info["correct"] = [p for p, a, b in zip(test, c, r) if a > b]
    return info


def run(folder: Path, n: int, k: int, budget: int, margin: float, searches: list[str], round_candidates: int,
        beam: int, pick_seed: int = 0, hidden: int = 128, layers: int = 2, extra_budgets: tuple = (),
        repeat: int = 1) -> dict:
    import pandas as pd

    from seam.models.loading import load_rm
    from seam.negatives import AdvConfig, build_negatives

    info = trained_rm(folder, hidden=hidden, layers=layers)
    correct = info.pop("correct")
    rng = np.random.default_rng(pick_seed)
    pick = [correct[int(i)] for i in rng.permutation(len(correct))[:n]]
    df = pd.DataFrame([{"id": p["id"], "prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"],
                        "meta": {}} for p in pick])
    rm = load_rm(folder, device="cpu")
    out = {**info, "instructions": len(df), "k": k, "query_budget": budget, "margin": margin, "runs": {}}
    todo = [(search, budget, search) for search in searches]
    todo += [("batched", b, f"batched@{b}") for b in extra_budgets]
    walls: dict[str, list[float]] = {}
    for (search, run_budget, name), _ in [(x, r) for r in range(repeat) for x in todo]:  # interleaved repeats
        cfg = AdvConfig(k=k, query_budget=run_budget, margin=margin, search=search, recipe="greedy",
                        round_candidates=round_candidates, beam=beam)
        t = time.perf_counter()
        neg, s = build_negatives("adv", df, cfg, rm=rm)
        walls.setdefault(name, []).append(time.perf_counter() - t)
        wall = min(walls[name])  # results are deterministic; the fastest run is the least disturbed
        out["runs"][name] = {
            "seconds": round(wall, 1), "seconds_all_runs": [round(w, 1) for w in walls[name]],
            "seconds_per_instruction": round(wall / len(df), 4),
            "successful_negatives_per_instruction": round(s["successful_negatives"] / len(df), 3),
            "success_rate": round(s["success_rate"], 3), "negatives_per_instruction": round(s["per_instruction"]["mean"], 2),
            "rm_queries": s["rm_queries"], "rm_queries_per_instruction": round(s["rm_queries"] / len(df), 1),
            "queries_per_success": round(s["queries_per_success"], 1) if s["queries_per_success"] else None,
            "max_search_queries": int(max((m["queries"] for m in neg["meta"]), default=0)),
            "rounds": s["rounds"], "grad_calls": s["grad_calls"], "query_budget": run_budget,
        }
        print(name, json.dumps(out["runs"][name]), file=sys.stderr)
    if "textattack" in out["runs"]:
        t = out["runs"]["textattack"]
        for name, b in out["runs"].items():
            if name != "textattack":
                out[f"{name}_over_textattack"] = {key: round(b[key] / t[key], 3) if t[key] else None for key in (
                    "seconds", "successful_negatives_per_instruction", "success_rate", "negatives_per_instruction",
                    "rm_queries")}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="instructions attacked (default 200)")
    ap.add_argument("--k", type=int, default=10, help="negatives kept per instruction (default 10)")
    ap.add_argument("--budget", type=int, default=300, help="RM queries per instruction (default 300)")
    ap.add_argument("--margin", type=float, default=0.0, help="success margin (default 0)")
    ap.add_argument("--search", default="batched,textattack", help="which searches, comma-separated")
    ap.add_argument("--round-candidates", type=int, default=24, help="batched: new texts per instruction and round "
                    "(default 24, AdvConfig's)")
    ap.add_argument("--batched-budgets", default="", help="also run the batched search at these budgets "
                    "(comma-separated), e.g. 100: about TextAttack's queries")
    ap.add_argument("--beam", type=int, default=1, help="batched: beam width (default 1)")
    ap.add_argument("--hidden", type=int, default=128, help="RM hidden size (default 128)")
    ap.add_argument("--layers", type=int, default=2, help="RM layers (default 2)")
    ap.add_argument("--pick-seed", type=int, default=0, help="seed of the pick of held-out pairs (default 0)")
    ap.add_argument("--repeat", type=int, default=1, help="run every search this many times, interleaved, and report "
                    "the fastest wall time (for a machine shared with other work)")
    ap.add_argument("--rm-dir", metavar="DIR", help="keep the trained RM here and reuse it (default: a temporary folder)")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SEAM_CACHE_DIR"] = str(Path(tmp) / "cache")
        folder = Path(args.rm_dir) if args.rm_dir else Path(tmp) / "rm"
        folder.mkdir(parents=True, exist_ok=True)
        res = run(folder, args.n, args.k, args.budget, args.margin, [s for s in args.search.split(",") if s],
                  args.round_candidates, args.beam, args.pick_seed, args.hidden, args.layers,
                  tuple(int(b) for b in args.batched_budgets.split(",") if b.strip()), args.repeat)
    res.update({"torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()})
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
