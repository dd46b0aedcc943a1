"""Scale-out path: export a (filtered) prompt set and the RM for OpenRLHF's Ray PPO trainer.

`export_openrlhf_run(cfg)` writes, into ``cfg.out``:

    prompts.jsonl        {"id", "prompt"}: the prompt rendered with the template up to the answer
                         (stackllama / format templates; read with ``--input_key prompt``), or the
                         raw prompt for ``--template chat`` (then ``--apply_chat_template``)
    reward_model/        the RM as an HF folder (safetensors + tokenizer; a LoRA adapter is merged
                         first); OpenRLHF reads its ``score`` head with ``--value_head_prefix score``
    policy/              only when the PM comes with a LoRA adapter: the merged policy
    train_ppo_ray.sh     the matching ``ray job submit ... -- python3 -m openrlhf.cli.train_ppo_ray``
    export.json          what was exported from where (with the prompt set's lineage), and the command

The flags used exist in OpenRLHF's ``openrlhf/cli/train_ppo_ray.py`` (0.6 to 0.9 series). Paths
are absolute: the folder must sit on storage every Ray node can read.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from ..data import load_instructions, write_table
from ..errors import SeamError
from ..io import describe_file, write_json, write_text
from ..models.loading import apply_adapter, resolve_checkpoint
from ..models.templates import get_template
from .common import RunDir
from .data import queries
from .models import load_causal_lm, load_classifier, load_tokenizer, split_model_arg

MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "chat_template.jinja", "tokenizer.model", "vocab.json", "merges.txt",
               "added_tokens.json")


@dataclass
class OpenRLHFConfig:
    data: str = field(default="", metadata={"help": "prompt set (instructions contract), e.g. the output of seam select"})
    pm: str = field(default="", metadata={"help": "policy (SFT) model folder: --pretrain (and the reference)"})
    rm: str = field(default="", metadata={"help": "reward model folder: copied to reward_model/ (--reward_pretrain, critic init)"})
    out: str = field(default="", metadata={"help": "export folder (must not exist)"})
    pm_adapter: str | None = field(default=None, metadata={"help": "LoRA adapter for the PM (merged into policy/)"})
    rm_adapter: str | None = field(default=None, metadata={"help": "LoRA adapter for the RM (merged into reward_model/)"})
    template: str = field(default="stackllama", metadata={"help": "stackllama | chat | format string (how prompts are rendered)"})
    save_path: str | None = field(default=None, metadata={"help": "where OpenRLHF saves the trained policy (default OUT/checkpoint)"})
    nodes: int = field(default=1, metadata={"help": "Ray nodes"})
    gpus_per_node: int = field(default=8, metadata={"help": "GPUs per node (actor, ref, critic, reward and vLLM colocated)"})
    vllm_num_engines: int | None = field(default=None, metadata={"help": "vLLM engines (default: nodes x gpus_per_node; 0 = HF generate)"})
    micro_train_batch_size: int = field(default=4, metadata={"help": "per-GPU training micro-batch"})
    train_batch_size: int = field(default=32, metadata={"help": "global training batch (paper: 32)"})
    micro_rollout_batch_size: int = field(default=8, metadata={"help": "per-GPU rollout micro-batch"})
    rollout_batch_size: int = field(default=32, metadata={"help": "prompts per rollout (paper: 32)"})
    max_epochs: int = field(default=1, metadata={"help": "PPO epochs per rollout batch"})
    num_episodes: int = field(default=1, metadata={"help": "passes over the prompt set"})
    prompt_max_len: int = field(default=1024, metadata={"help": "max prompt tokens"})
    generate_max_len: int = field(default=512, metadata={"help": "max new tokens per rollout"})
    actor_learning_rate: float = field(default=1.4e-5, metadata={"help": "policy learning rate (paper: 1.4e-5)"})
    critic_learning_rate: float = field(default=9e-6, metadata={"help": "value model learning rate"})
    init_kl_coef: float = field(default=0.05, metadata={"help": "KL coefficient"})
    zero_stage: int = field(default=2, metadata={"help": "DeepSpeed ZeRO stage"})
    lora_rank: int = field(default=0, metadata={"help": "LoRA rank (0 = full fine-tuning)"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    seed: int = field(default=0, metadata={"help": "seed"})
    address: str = field(default="http://127.0.0.1:8265", metadata={"help": "Ray dashboard address for `ray job submit`"})
    extra: tuple[str, ...] = field(default=(), metadata={"help": "more train_ppo_ray flags, appended verbatim"})
    allow_pickle: bool = field(default=False, metadata={"help": "allow pickle weights"})

    def validate(self) -> None:
        for name in ("data", "pm", "rm", "out"):
            if not getattr(self, name):
                raise SeamError(f"--{name} is required for the OpenRLHF export")
        for name in ("nodes", "gpus_per_node", "micro_train_batch_size", "train_batch_size",
                     "micro_rollout_batch_size", "rollout_batch_size", "max_epochs", "num_episodes",
                     "prompt_max_len", "generate_max_len"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SeamError(f"--{name.replace('_', '-')} must be a positive integer, got {v!r}")
        if self.zero_stage not in (0, 1, 2, 3):
            raise SeamError(f"--zero-stage must be 0, 1, 2 or 3, got {self.zero_stage}")
        if self.vllm_num_engines is not None and self.vllm_num_engines < 0:
            raise SeamError(f"--vllm-num-engines must be >= 0, got {self.vllm_num_engines}")


@dataclass
class OpenRLHFExport:
    out: Path
    prompts: Path
    reward_model: Path
    policy: str  # folder passed as --pretrain (the given PM, or OUT/policy when merged)
    command: list[str]
    script: Path
    n_prompts: int


def check_reward_head(folder: Path) -> tuple[int, int]:
    """(rows, hidden) of ``score.weight``; errors when OpenRLHF's bias-free ``score`` head cannot load it."""
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        keys = set(weight_map)
        files = {weight_map["score.weight"]} if "score.weight" in weight_map else set()
    else:
        files = {p.name for p in folder.glob("*.safetensors")}
        keys = set()
        for f in files:
            with safe_open(str(folder / f), "pt") as fh:
                keys |= set(fh.keys())
    if "score.weight" not in keys:
        heads = sorted(k for k in keys if not k.startswith(("model.", "transformer.")))[:5]
        raise SeamError(f"--rm {folder}: no `score.weight` tensor (non-backbone tensors: {', '.join(heads) or 'none'}); "
                        "OpenRLHF needs a decoder sequence classifier with a `score` head, as `seam train rm` writes")
    if "score.bias" in keys:
        raise SeamError(f"--rm {folder}: the score head has a bias, but OpenRLHF's value head is bias-free; "
                        "retrain the RM with a bias-free head (the default for Llama/Qwen/Mistral classifiers)")
    for f in files:
        with safe_open(str(folder / f), "pt") as fh:
            if "score.weight" in set(fh.keys()):
                shape = tuple(fh.get_slice("score.weight").get_shape())
                if shape[0] != 1:
                    raise SeamError(f"--rm {folder}: score head has {shape[0]} outputs; a reward model needs exactly 1")
                return int(shape[0]), int(shape[1])
    raise SeamError(f"--rm {folder}: could not read score.weight")  # pragma: no cover


def _copy_model(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    for p in src.iterdir():
        if p.is_file() and (p.name in MODEL_FILES or p.suffix == ".safetensors" or p.name.endswith(".safetensors.index.json")):
            shutil.copy2(p, dst / p.name)


def _merged(path: str, adapter: str | None, role: str, dst: Path, allow_pickle: bool) -> Path:
    """A plain HF folder for (path, adapter): the PM folder itself / a copy of the RM, or a merged
    copy at `dst` when an adapter is given or `path` is a LoRA run folder."""
    _, auto = split_model_arg(path, f"--{role}")
    if adapter is None and auto is None:
        folder = resolve_checkpoint(path, f"--{role}", allow_pickle)
        if role == "pm":
            return folder
        _copy_model(folder, dst)
        return dst
    if role == "rm":
        tok, model, _ = load_classifier(path, "--rm", allow_pickle)
    else:
        tok, model = load_causal_lm(path, "--pm", allow_pickle)
    if adapter is not None:
        model = apply_adapter(model, Path(adapter), f"--{role}-adapter", allow_pickle, trainable=True)
    model.save_pretrained(str(dst), safe_serialization=True)
    tok.save_pretrained(str(dst))
    return dst


def build_command(cfg: OpenRLHFConfig, prompts: Path, policy: str, reward: Path, save_path: str,
                  apply_chat_template: bool, n_prompts: int) -> list[str]:
    gpus = cfg.gpus_per_node
    engines = cfg.nodes * gpus if cfg.vllm_num_engines is None else cfg.vllm_num_engines
    cmd = ["ray", "job", "submit", f"--address={cfg.address}", "--", "python3", "-m", "openrlhf.cli.train_ppo_ray"]
    for role in ("ref", "reward", "critic", "actor"):
        cmd += [f"--{role}_num_nodes", str(cfg.nodes), f"--{role}_num_gpus_per_node", str(gpus)]
    if engines:
        cmd += ["--vllm_num_engines", str(engines), "--vllm_tensor_parallel_size", "1", "--colocate_all_models",
                "--vllm_gpu_memory_utilization", "0.5"]
    else:
        cmd += ["--colocate_actor_ref", "--colocate_critic_reward"]
    cmd += ["--pretrain", str(policy), "--reward_pretrain", str(reward), "--critic_pretrain", str(reward),
            "--value_head_prefix", "score", "--save_path", save_path,
            "--prompt_data", str(prompts), "--input_key", "prompt", "--max_samples", str(n_prompts),
            "--micro_train_batch_size", str(cfg.micro_train_batch_size),
            "--train_batch_size", str(cfg.train_batch_size),
            "--micro_rollout_batch_size", str(cfg.micro_rollout_batch_size),
            "--rollout_batch_size", str(cfg.rollout_batch_size), "--max_epochs", str(cfg.max_epochs),
            "--num_episodes", str(cfg.num_episodes), "--prompt_max_len", str(cfg.prompt_max_len),
            "--generate_max_len", str(cfg.generate_max_len), "--zero_stage", str(cfg.zero_stage), "--bf16",
            "--actor_learning_rate", repr(cfg.actor_learning_rate),
            "--critic_learning_rate", repr(cfg.critic_learning_rate),
            "--init_kl_coef", repr(cfg.init_kl_coef), "--seed", str(cfg.seed), "--gradient_checkpointing"]
    if apply_chat_template:
        cmd.append("--apply_chat_template")
    if cfg.lora_rank:
        cmd += ["--lora_rank", str(cfg.lora_rank), "--lora_alpha", str(cfg.lora_alpha)]
    cmd += list(cfg.extra)
    return cmd


def format_command(cmd: list[str]) -> str:
    """Shell-quoted, one ``--flag value`` per line."""
    lines: list[list[str]] = []
    for c in cmd:
        if lines and not c.startswith("-") and lines[-1][-1].startswith("--") and len(lines[-1]) == 1:
            lines[-1].append(c)
        elif c.startswith("--") or not lines:
            lines.append([c])
        else:
            lines[-1].append(c)
    return " \\\n    ".join(" ".join(shlex.quote(x) for x in line) for line in lines)


def export_openrlhf_run(cfg: OpenRLHFConfig) -> OpenRLHFExport:
    """Write prompts, RM (and merged policy) and the train_ppo_ray command into `cfg.out`."""
    cfg.validate()
    run = RunDir(cfg.out, flag="--out", inputs=[("--data", cfg.data), ("--pm", cfg.pm), ("--rm", cfg.rm),
                                                ("--pm-adapter", cfg.pm_adapter), ("--rm-adapter", cfg.rm_adapter)])
    df = load_instructions(cfg.data)
    if df.empty:
        raise SeamError(f"--data {cfg.data}: no prompts to export")
    rm_src = Path(cfg.rm)
    tok = load_tokenizer(cfg.pm, "--pm", cfg.allow_pickle)
    chat = cfg.template == "chat"
    if chat:
        prompts_text = df["prompt"].tolist()
    else:
        prompts_text, _ = queries(df["prompt"].tolist(), tok, get_template(cfg.template, tok))

    out = run.create()
    try:
        # OpenRLHF reads --input_key prompt and ignores other keys; the id keeps rows traceable
        prompts = write_table(pd.DataFrame({"id": df["id"], "prompt": prompts_text}), out / "prompts.jsonl")
        reward = _merged(str(rm_src), cfg.rm_adapter, "rm", out / "reward_model", cfg.allow_pickle)
        check_reward_head(reward)
        policy = _merged(cfg.pm, cfg.pm_adapter, "pm", out / "policy", cfg.allow_pickle)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    final = run.final.resolve()
    # paths in the command point at the final folder (after the rename below)
    rel = lambda p: final / Path(p).relative_to(out) if str(p).startswith(str(out)) else Path(p).resolve()  # noqa: E731
    save_path = cfg.save_path or str(final / "checkpoint")
    cmd = build_command(cfg, rel(prompts), str(rel(policy)), rel(reward), save_path, chat, len(df))
    script = out / "train_ppo_ray.sh"
    write_text(script, "#!/usr/bin/env bash\n# written by `seam export openrlhf`; run where `ray` reaches the cluster\n"
                       "set -euo pipefail\n" + format_command(cmd) + "\n")
    script.chmod(0o755)
    manifest = {"seam_export": 1, "target": "openrlhf", "config": asdict(cfg), "prompts": len(df),
                "data": describe_file(cfg.data, len(df)), "pm": str(Path(cfg.pm).resolve()),
                "rm": str(rm_src.resolve()), "command": cmd}
    write_json(out / "export.json", manifest)
    run.finish()
    return OpenRLHFExport(final, final / "prompts.jsonl", final / "reward_model", str(rel(policy)), cmd,
                          final / "train_ppo_ray.sh", len(df))


def launch(export: OpenRLHFExport) -> int:
    """Run the exported `ray job submit` command (needs the `ray` CLI and a reachable cluster)."""
    if shutil.which("ray") is None:
        raise SeamError("--launch needs the `ray` command (pip install 'ray[default]') and a Ray cluster at --address; "
                        f"or run {export.script} on a machine that has them")
    return subprocess.run(export.command, check=False, env=dict(os.environ)).returncode
