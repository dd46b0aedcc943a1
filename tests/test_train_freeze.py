"""RM training with --train-layers: only the top layers, the final norm and the score head move."""

import torch

from seam.train import train_rm
from seam.train.config import RMConfig
from seam.train.rm import freeze_below


def test_freeze_below_marks_only_top_layers(tiny_models):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_models[1])
    n = freeze_below(model, 1)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert n == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert any(name.startswith("model.layers.1.") for name in trainable)
    assert not any(name.startswith("model.layers.0.") or "embed_tokens" in name for name in trainable)
    assert "score.weight" in trainable and "model.norm.weight" in trainable


def test_train_rm_with_train_layers_changes_only_top(tiny_models, tmp_path):
    import json

    from safetensors.torch import load_file

    rows = [{"id": f"p{i}", "prompt": f"What is {i} plus {i}?", "chosen": f"It is {2 * i}.", "rejected": "I cannot help."}
            for i in range(16)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "rm"
    train_rm(RMConfig(model=str(tiny_models[1]), data=str(data), output_dir=str(out), max_steps=3,
                      per_device_train_batch_size=4, learning_rate=1e-2, report_to="none", device="cpu", train_layers=1,
                      disable_tqdm=True))
    before = load_file(tiny_models[1] / "model.safetensors")
    after = load_file(out / "model.safetensors")
    assert torch.equal(before["model.layers.0.mlp.up_proj.weight"], after["model.layers.0.mlp.up_proj.weight"])
    assert torch.equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"])
    assert not torch.equal(before["model.layers.1.mlp.up_proj.weight"], after["model.layers.1.mlp.up_proj.weight"])
    assert not torch.equal(before["score.weight"], after["score.weight"])
