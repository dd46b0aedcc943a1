"""Model references: hub ids from a local Hugging Face cache (never downloaded), adapters on hub-id
bases, multi-label RMs (--rm-label), per-model devices and device maps (issue 15, item 1)."""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seam.cli import main
from seam.errors import SeamError
from seam.models.loading import LoadedModel, fingerprint, load_pm, load_rm
from seam.models.refs import hub_cache_dir, hub_id, resolve_model_ref

from helpers import random_texts, write_score_files

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def add_to_hub_cache(cache: Path, repo_id: str, src: Path, commit: str | None = None, ref: str = "main") -> Path:
    """Lay `src` out in `cache` the way huggingface_hub does: blobs named by their hash, a snapshot
    folder of relative symlinks to them, and refs/<ref> holding the commit hash. Returns the snapshot."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = commit or hashlib.sha1(f"{repo_id}:{src}".encode()).hexdigest()
    snap = repo / "snapshots" / commit
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        data = f.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snap / f.relative_to(src)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(commit)  # huggingface_hub writes no newline
    return snap


@pytest.fixture(scope="module")
def two_label_rm(tiny_models, tmp_path_factory):
    """A 2-label LlamaForSequenceClassification with the tiny models' tokenizer."""
    import torch
    from transformers import LlamaForSequenceClassification

    from seam.models.tiny import build_tokenizer, tiny_config

    tok = build_tokenizer()
    cfg = tiny_config(tok)
    cfg.num_labels = 2
    torch.manual_seed(5)
    d = tmp_path_factory.mktemp("rm2") / "rm2"
    LlamaForSequenceClassification(cfg).save_pretrained(d, safe_serialization=True)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def lora(tiny_models, tmp_path_factory):
    """A LoRA adapter of the tiny PM (non-zero B, so it changes the outputs) whose adapter_config.json
    names the hub id org/tiny-pm as its base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    base = AutoModelForCausalLM.from_pretrained(tiny_models[0])
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 init_lora_weights=False, task_type="CAUSAL_LM"))
    d = tmp_path_factory.mktemp("lora") / "lora"
    peft_model.save_pretrained(d)
    cfg = json.loads((d / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "org/tiny-pm"
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    return d


@pytest.fixture(scope="module")
def hub(tiny_models, two_label_rm, lora, tmp_path_factory):
    """A Hugging Face cache holding org/tiny-pm, org/tiny-rm, org/tiny-rm2 and org/tiny-lora."""
    cache = tmp_path_factory.mktemp("hf") / "hub"
    add_to_hub_cache(cache, "org/tiny-pm", tiny_models[0])
    add_to_hub_cache(cache, "org/tiny-rm", tiny_models[1])
    add_to_hub_cache(cache, "org/tiny-rm2", two_label_rm)
    add_to_hub_cache(cache, "org/tiny-lora", lora)
    return cache


@pytest.fixture
def hf_cache(hub, monkeypatch):
    """The test cache as the process's HF cache, and no network at all (a download attempt would fail loudly)."""
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # resolution is offline whatever this says

    def no_network(*args, **kwargs):
        raise AssertionError("a model reference tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    return hub


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("refs-data")
    write_score_files(d, 5, seed=11, max_negs=4)
    return d


def score(files, out: Path, capsys, *extra) -> tuple[int, str, pd.DataFrame | None]:
    argv = ["score", "--data", files / "rl.jsonl", "--negatives", files / "negs.jsonl", "--out", out,
            "--details", out.with_suffix(".details.jsonl"), "--device", "cpu", "--quiet", *extra]
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    det = pd.read_json(out.with_suffix(".details.jsonl"), lines=True) if code == 0 else None
    return code, err, det


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("error:")]


# ------------------------------------------------------------------------------- hub ids


def test_hub_id_shapes():
    assert hub_id("org/name") == ("org/name", None)
    assert hub_id("org/name@v1.0") == ("org/name", "v1.0")
    assert hub_id("gpt2") == ("gpt2", None)
    for not_an_id in ("/abs/folder", "./rel", "~/m", "a/b/c", "org--x/y", "org/na me", ""):
        assert hub_id(not_an_id) is None, not_an_id


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    assert hub_cache_dir() == tmp_path / "c"


def test_hub_id_resolves_to_its_snapshot_with_the_folders_fingerprint(hf_cache, tiny_models):
    snap = resolve_model_ref("org/tiny-pm", "--pm")
    assert snap.parent == hf_cache / "models--org--tiny-pm" / "snapshots"
    assert (snap / "config.json").is_file() and snap.is_relative_to(hf_cache)
    assert fingerprint("org/tiny-pm") == fingerprint(tiny_models[0])  # same bytes, same fingerprint
    assert fingerprint("org/tiny-pm") != fingerprint("org/tiny-rm")
    # a local folder of that name wins over the cache
    assert resolve_model_ref(tiny_models[0], "--pm") == Path(tiny_models[0])


def test_score_with_hub_ids_equals_score_with_folders(hf_cache, tiny_models, files, tmp_path, capsys):
    code, err, by_folder = score(files, tmp_path / "a.jsonl", capsys, "--pm", tiny_models[0], "--rm", tiny_models[1])
    assert code == 0, err
    code, err, by_id = score(files, tmp_path / "b.jsonl", capsys, "--pm", "org/tiny-pm", "--rm", "org/tiny-rm@main")
    assert code == 0, err
    pd.testing.assert_frame_equal(by_folder, by_id)  # bit-identical
    a = pd.read_json(tmp_path / "a.jsonl", lines=True)
    b = pd.read_json(tmp_path / "b.jsonl", lines=True)
    pd.testing.assert_frame_equal(a, b)


def test_missing_hub_id_exits_2_naming_the_id_and_the_cache(hf_cache, tiny_models, files, tmp_path, capsys):
    code, err, _ = score(files, tmp_path / "s.jsonl", capsys, "--pm", "org/not-cached", "--rm", tiny_models[1])
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1, err
    assert "org/not-cached" in lines[0] and str(hf_cache) in lines[0] and "--pm" in lines[0]
    assert not (tmp_path / "s.jsonl").exists()
    # an unknown revision of a cached model, and the embedder flag of contrast negatives
    with pytest.raises(SeamError, match=r"org/tiny-rm at revision v9.*not in the Hugging Face cache"):
        load_rm("org/tiny-rm@v9", device="cpu")
    code = main(["negatives", "contrast", "--data", str(files / "rl.jsonl"), "--out", str(tmp_path / "n.jsonl"),
                 "--embedder", "org/no-embedder"])
    lines = error_lines(capsys.readouterr().err)
    assert code == 2 and len(lines) == 1 and "--embedder org/no-embedder" in lines[0] and str(hf_cache) in lines[0]


def test_missing_hub_id_in_a_real_process_never_downloads(hub, tiny_models, files, tmp_path):
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}
    proc = subprocess.run([sys.executable, "-m", "seam", "score", "--pm", "org/absent", "--rm", str(tiny_models[1]),
                           "--data", str(files / "rl.jsonl"), "--negatives", str(files / "negs.jsonl"),
                           "--out", str(tmp_path / "o.jsonl")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --pm org/absent") and str(hub) in lines[0], proc.stderr


# ------------------------------------------------------------------------------- adapters


def test_adapter_on_a_hub_id_base(hf_cache, tiny_models, lora):
    from seam.models.scoring import PolicyScorer
    from seam.models.templates import get_template

    prompts, responses = random_texts(3, seed=2, max_negs=2)
    tpl = get_template("stackllama")

    def logprobs(loaded):
        return PolicyScorer(loaded, tpl).score(prompts, responses)[0]

    explicit = load_pm(tiny_models[0], lora, device="cpu")
    by_adapter = load_pm(lora, device="cpu")  # the adapter folder as --pm: base org/tiny-pm from the cache
    by_hub_ids = load_pm("org/tiny-pm", "org/tiny-lora", device="cpu")
    adapter_id = load_pm("org/tiny-lora", device="cpu")
    plain = load_pm(tiny_models[0], device="cpu")
    ref = logprobs(explicit)
    for other in (by_adapter, by_hub_ids, adapter_id):
        np.testing.assert_array_equal(logprobs(other), ref)
    assert np.abs(logprobs(plain) - ref).max() > 1e-3  # the adapter changes the model
    assert by_adapter.fingerprint == explicit.fingerprint == by_hub_ids.fingerprint != plain.fingerprint


def test_adapter_whose_hub_base_is_missing(hf_cache, lora, tmp_path):
    d = shutil.copytree(lora, tmp_path / "lora")
    cfg = json.loads((d / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "org/gone"
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(SeamError, match=rf"--pm {d}: its base model org/gone: not a local folder.*{hf_cache}"):
        load_pm(d, device="cpu")


def test_training_loader_takes_an_adapter_on_a_hub_id_base(hf_cache, lora):
    from seam.train.models import split_model_arg

    base, adapter = split_model_arg(str(lora), "--model")
    assert Path(base).is_relative_to(hf_cache) and adapter == lora


# ------------------------------------------------------------------------------- multi-label RMs


def test_two_label_rm_needs_rm_label(tiny_models, two_label_rm, files, tmp_path, capsys):
    code, err, _ = score(files, tmp_path / "s.jsonl", capsys, "--pm", tiny_models[0], "--rm", two_label_rm)
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1, err
    assert "2 labels" in lines[0] and "--rm-label" in lines[0] and str(two_label_rm) in lines[0]
    code, err, _ = score(files, tmp_path / "s.jsonl", capsys, "--pm", tiny_models[0], "--rm", two_label_rm, "--rm-label", 2)
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: --rm-label 2:") and "0..1" in lines[0], err
    code, err, _ = score(files, tmp_path / "s.jsonl", capsys, "--pm", tiny_models[0], "--rm", tiny_models[1],
                         "--rm-label", 1)
    assert code == 2 and "--rm-label 1" in error_lines(err)[0]
    assert not (tmp_path / "s.jsonl").exists()


def test_rm_label_picks_that_logit(tiny_models, two_label_rm, files, tmp_path, capsys):
    import torch

    from seam.models.templates import get_template

    code, err, det = score(files, tmp_path / "s.jsonl", capsys, "--pm", tiny_models[0], "--rm", two_label_rm,
                           "--rm-label", 1)
    assert code == 0, err
    rm = load_rm(two_label_rm, device="cpu", label="LABEL_1")  # by id2label name
    assert rm.reward_label == 1 and rm.info["num_labels"] == 2
    tpl = get_template("stackllama")
    negs = pd.read_json(files / "negs.jsonl", lines=True)
    prompts = pd.read_json(files / "rl.jsonl", lines=True).set_index("id")["prompt"]
    logits = []
    with torch.inference_mode():  # the plain classifier forward, one text at a time
        for i, text in zip(negs["id"], negs["text"]):
            ids = rm.tokenizer(tpl.render(prompts[i], text).text)["input_ids"]
            logits.append(rm.model(input_ids=torch.tensor([ids])).logits[0].numpy())
    logits = np.array(logits)
    assert np.abs(det["rm_neg"].to_numpy() - logits[:, 1]).max() < 1e-4
    assert np.abs(det["rm_neg"].to_numpy() - logits[:, 0]).max() > 1e-3  # not the other one


def test_single_label_rm_unchanged_by_rm_label_0(tiny_models, files, tmp_path, capsys):
    code, err, a = score(files, tmp_path / "a.jsonl", capsys, "--pm", tiny_models[0], "--rm", tiny_models[1])
    assert code == 0, err
    code, err, b = score(files, tmp_path / "b.jsonl", capsys, "--pm", tiny_models[0], "--rm", tiny_models[1],
                         "--rm-label", 0)
    assert code == 0, err
    pd.testing.assert_frame_equal(a, b)


# ------------------------------------------------------------------------------- devices


def test_per_model_devices_and_device_map_give_the_same_numbers(tiny_models, files, tmp_path, capsys):
    code, err, a = score(files, tmp_path / "a.jsonl", capsys, "--pm", tiny_models[0], "--rm", tiny_models[1])
    assert code == 0, err
    code, err, b = score(files, tmp_path / "b.jsonl", capsys, "--pm", tiny_models[0], "--rm", tiny_models[1],
                         "--device-map", "auto", "--rm-device", "cpu")
    assert code == 0, err
    pd.testing.assert_frame_equal(a, b)
    code, err, _ = score(files, tmp_path / "c.jsonl", capsys, "--pm", tiny_models[0], "--rm", tiny_models[1],
                         "--pm-device", "tpu")
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: --pm-device 'tpu'"), err


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


SPREADS = {  # where each part of the tiny models goes (lm_head / score added per model)
    "cpu+disk": {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
                 "model.norm": "cpu", "model.rotary_emb": "cpu"},
    # on a GPU machine: layers on the GPU and the CPU, the head back on the GPU (every tensor crosses devices)
    "gpu+cpu": {"model.embed_tokens": 0, "model.layers.0": 0, "model.layers.1": "cpu", "model.norm": "cpu",
                "model.rotary_emb": 0},
}


@pytest.mark.parametrize("spread", list(SPREADS))
def test_dispatched_model_falls_back_from_the_fast_path(spread, tiny_models, tmp_path):
    """A model spread by a device map (accelerate hooks; weights offloaded to disk, or split between a
    GPU and the CPU) scores through the transformers forward with the same numbers as the plain model."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from seam.models.fastpath import fast_decoder
    from seam.models.scoring import PolicyScorer, RewardScorer, _base_decoder
    from seam.models.templates import get_template

    if spread == "gpu+cpu" and not _has_cuda():
        pytest.skip("needs a CUDA GPU")
    prompts, responses = random_texts(4, seed=4, max_negs=3)
    tpl = get_template("stackllama")
    pm, rm = load_pm(tiny_models[0], device="cpu"), load_rm(tiny_models[1], device="cpu")
    assert fast_decoder(_base_decoder(pm.model)) is not None
    head_device = 0 if spread == "gpu+cpu" else "cpu"
    mapped = []
    for cls, folder, head in ((AutoModelForCausalLM, tiny_models[0], "lm_head"),
                              (AutoModelForSequenceClassification, tiny_models[1], "score")):
        model = cls.from_pretrained(folder, device_map={**SPREADS[spread], head: head_device},
                                    offload_folder=str(tmp_path / f"offload-{head}")).eval()
        assert any(hasattr(m, "_hf_hook") for m in model.modules())
        assert fast_decoder(_base_decoder(model)) is None  # "accelerate hooks": the transformers forward
        mapped.append(model)
    pm2 = LoadedModel(mapped[0], pm.tokenizer, "pm", Path(tiny_models[0]), "x")
    rm2 = LoadedModel(mapped[1], rm.tokenizer, "rm", Path(tiny_models[1]), "x")
    assert str(pm2.device) == ("cuda:0" if spread == "gpu+cpu" else "cpu")
    lp, tok, _ = PolicyScorer(pm, tpl).score(prompts, responses)
    lp2, tok2, _ = PolicyScorer(pm2, tpl).score(prompts, responses)
    np.testing.assert_array_equal(tok, tok2)
    assert np.abs(lp - lp2).max() < 1e-3
    r = RewardScorer(rm, tpl).score(prompts, responses)
    r2 = RewardScorer(rm2, tpl).score(prompts, responses)
    assert np.abs(r - r2).max() < 1e-3


@pytest.mark.skipif(not _has_cuda(), reason="needs a CUDA GPU")
def test_pm_on_the_gpu_rm_on_the_cpu_and_device_map_on_a_gpu(tiny_models, files, tmp_path, capsys):
    code, err, a = score(files, tmp_path / "a.jsonl", capsys, "--pm", tiny_models[0], "--rm", tiny_models[1],
                         "--dtype", "float32")
    assert code == 0, err
    for extra in (["--pm-device", "cuda:0", "--rm-device", "cpu"], ["--device-map", "auto"]):
        code, err, b = score(files, tmp_path / "b.jsonl", capsys, "--pm", tiny_models[0], "--rm", tiny_models[1],
                             "--dtype", "float32", *extra)
        assert code == 0, err
        assert np.abs(a["pm_logprob_sum"] - b["pm_logprob_sum"]).max() < 1e-3, extra
        assert np.abs(a["rm_neg"] - b["rm_neg"]).max() < 1e-3, extra


def test_bad_device_map_is_one_line():
    from seam.models.loading import resolve_device_map

    with pytest.raises(SeamError, match="--device-map 'everywhere' is not one of auto"):
        resolve_device_map("everywhere")
