"""Arms and inputs: which files an experiment reads, and which arms it compares.

`ExperimentInputs` names the files and models (or `project_inputs` finds them in a `seam demo`
folder; `demo_heldout` rebuilds a demo world's unused RL tasks as eval prompts). An `Arm` is one
line of the results table: `full`, `seam`, `seam:contrast`, `random`, `seam@0.3`, ...; `parse_arm`
reads one and `build_arms` lists a config's arms, the reference arm first.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import load_instructions
from ..errors import SeamError
from ..select import check_fraction
from ..settings import setting
from ..testbed import WorldConfig, generate_tasks, instructions_rows, split
from .config import AUGMENT_ARMS, FILTER_ARMS, REFERENCE, ExperimentConfig, arm_alias

# ============================================================================ inputs


@dataclass
class ExperimentInputs:
    """Files and models an experiment reads (paths). Not a `Settings`: `to_dict` records the resolved
    absolute paths (the manifest's inputs), so it does not round-trip."""

    rl: str = setting("", "RL instructions (the set PPO draws prompts from; the one SEAM scored)")
    pm: str = setting("", "policy model: PPO starts here (filter); SFT starts here (augment)")
    rm: str = setting("", "reward model: PPO's reward (filter) and the fixed RM judge of every arm")
    scores: str | None = setting(None, "SEAM scores file (`seam score --out`): seam arms")
    eval: str | None = setting(None, "held-out eval prompts (instructions contract; testbed meta for the gold judge)")
    negatives: str | None = setting(None, "negatives file: reward-gap rows without rejected; augment's contrast neighbours")
    sft: str | None = setting(None, "augment: the PM's original SFT data")
    rm_train: str | None = setting(None, "augment: the RM's original preference pairs")
    rm_test: str | None = setting(None, "augment: RM test pairs (accuracy of each retrained RM)")
    project: str | None = setting(None, "a `seam demo` folder: without an eval file, its world's unused RL tasks are the eval set")

    def to_dict(self) -> dict:
        return {k: (str(Path(v).resolve()) if v else None) for k, v in asdict(self).items()}


def project_inputs(project: str | os.PathLike, **overrides: str | None) -> ExperimentInputs:
    """The inputs of a `seam demo` project folder (data/, models/, results/); `overrides` win.

    Missing optional files are left None; the held-out eval set of a demo project is derived by
    `demo_heldout` when no eval file is given."""
    root = Path(project)
    if not root.is_dir():
        raise SeamError(f"--project {root}: not a folder; pass the folder `seam demo --dir` built, or give --rl/--pm/--rm")
    layout = {"rl": "data/rl.jsonl", "pm": "models/pm", "rm": "models/rm", "scores": "results/seam.jsonl",
              "negatives": "data/negatives.jsonl", "sft": "data/sft.jsonl", "rm_train": "data/rm_train.jsonl",
              "rm_test": "data/rm_test.jsonl", "eval": "data/eval.jsonl"}
    values = {k: (str(root / rel) if (root / rel).exists() else None) for k, rel in layout.items()}
    values.update({k: v for k, v in overrides.items() if v})
    for key in ("rl", "pm", "rm"):
        if not values.get(key):
            raise SeamError(f"--project {root}: no {layout[key]}; is it a `seam demo` folder? "
                            f"(or pass --{key.replace('_', '-')} explicitly)")
    return ExperimentInputs(**values, project=str(root))


def demo_heldout(project: str | os.PathLike, n: int | None, seed: int = 0) -> pd.DataFrame | None:
    """Held-out prompts of a demo project: tasks of the world's RL split that are not in data/rl.jsonl.

    The demo world is deterministic (demo.json records its seed and size), so the RL split is
    rebuilt and the tasks the demo did not put in the RL set become the eval prompts (`n` of them,
    a seeded sample). None when the folder is not a demo project or the rebuilt world does not
    match its rl.jsonl."""
    root = Path(project)
    manifest = root / "demo.json"
    rl_path = root / "data" / "rl.jsonl"
    if not manifest.is_file() or not rl_path.is_file():
        return None
    try:
        cfg = json.loads(manifest.read_text(encoding="utf-8"))["config"]
        world_seed, n_tasks = int(cfg["seed"]), int(cfg["n_tasks"])
    except (ValueError, KeyError, TypeError):
        return None
    parts = split(generate_tasks(WorldConfig(seed=world_seed, n_tasks=n_tasks)), seed=world_seed)
    rl = load_instructions(rl_path)
    by_id = {t.id: t for t in parts["rl"]}
    if any(by_id.get(i) is None or by_id[i].prompt != p for i, p in zip(rl["id"], rl["prompt"])):
        return None
    used = set(rl["id"])
    rest = [t for t in parts["rl"] if t.id not in used]
    if not rest:
        return None
    order = np.random.default_rng(seed + 101).permutation(len(rest))
    if n is not None:
        order = order[:n]
    rows = instructions_rows([rest[i] for i in sorted(order)])
    return pd.DataFrame(rows)


# ============================================================================ arms


@dataclass(frozen=True)
class Arm:
    name: str  # as given: full, seam, seam:llm, random, seam@0.3, ...
    method: str | None  # selection / augmentation method; None = the reference (data unchanged)
    p: float
    variants: tuple[str, ...]

    @property
    def slug(self) -> str:
        return "".join(c if c.isalnum() or c in "-_." else "-" for c in self.name.replace("@", "-p"))

    @property
    def seeded(self) -> bool:
        """True when the arm's data depends on the seed (random selection)."""
        return self.method == "random"


def parse_arm(name: str, kind: str, p: float, variants: tuple[str, ...]) -> Arm:
    """`seam`, `seam:contrast+llm` (those variants), `random`, `seam@0.3` (drop rate 0.3), ..."""
    raw = str(name).strip()
    base, _, rate = raw.partition("@")
    base, _, var = base.partition(":")
    base = arm_alias(base)
    table = AUGMENT_ARMS if kind == "augment" else FILTER_ARMS
    if base not in table:
        raise SeamError(f"--arms {raw!r}: unknown {kind} arm; use {', '.join(table)} "
                        "(seam:VARIANT for one variant, METHOD@RATE for another drop rate)")
    method = table[base]
    if var and method != "seam":
        raise SeamError(f"--arms {raw!r}: only the seam arm takes variants (seam:contrast)")
    if rate:
        try:
            p = float(rate)
        except ValueError:
            raise SeamError(f"--arms {raw!r}: the rate after @ must be a fraction, e.g. seam@0.3") from None
        check_fraction(p, f"--arms {raw}")
    vs = tuple(v for v in var.split("+") if v) if var else tuple(variants)
    canonical = base + (f":{var}" if var else "") + (f"@{rate}" if rate else "")
    return Arm(canonical, method, 0.0 if method is None else p, vs)


def build_arms(cfg: ExperimentConfig) -> list[Arm]:
    """The arms, reference first (so each seed's comparisons are available as soon as an arm ends)."""
    arms = [parse_arm(a, cfg.kind, cfg.p, cfg.variants) for a in cfg.arm_names()]
    names = [a.name for a in arms]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SeamError(f"--arms: {dup[0]!r} is given twice; list each arm once")
    ref = REFERENCE[cfg.kind]
    return sorted(arms, key=lambda a: a.name != ref)

