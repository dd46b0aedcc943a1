"""Model loading: clear one-line errors for every folder a user can get wrong."""

import json
import shutil

import pytest

from seam.errors import SeamError
from seam.models.loading import check_model_folder, fingerprint, load_pm, load_rm


def test_missing_folder(tmp_path):
    with pytest.raises(SeamError, match="does not exist"):
        load_pm(tmp_path / "nope")


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(SeamError, match="not a model folder"):
        load_rm(tmp_path)


def test_gguf_file_instead_of_folder(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    with pytest.raises(SeamError, match="folder that holds the .gguf"):
        check_model_folder(f, "--pm")


def test_two_gguf_files(tmp_path):
    (tmp_path / "a.gguf").write_bytes(b"x")
    (tmp_path / "b.gguf").write_bytes(b"x")
    with pytest.raises(SeamError, match="exactly one"):
        check_model_folder(tmp_path, "--pm")


def test_corrupt_gguf(tmp_path):
    (tmp_path / "broken.gguf").write_bytes(b"not really a gguf file")
    with pytest.raises(SeamError, match="cannot read this GGUF"):
        load_pm(tmp_path)


def test_rm_with_two_labels(tiny_models, tmp_path):
    from transformers import AutoModelForSequenceClassification

    rm = AutoModelForSequenceClassification.from_pretrained(tiny_models[1], num_labels=2, ignore_mismatched_sizes=True)
    rm.save_pretrained(tmp_path / "rm2")
    shutil.copy(tiny_models[1] / "tokenizer.json", tmp_path / "rm2")
    shutil.copy(tiny_models[1] / "tokenizer_config.json", tmp_path / "rm2")
    with pytest.raises(SeamError, match="2 labels"):
        load_rm(tmp_path / "rm2")


def test_tokenizer_without_eos(tiny_models, tmp_path):
    d = tmp_path / "pm"
    shutil.copytree(tiny_models[0], d)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["eos_token"] = None
    cfg["pad_token"] = None
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    stm = d / "special_tokens_map.json"
    if stm.exists():
        stm.unlink()
    with pytest.raises(SeamError, match="no EOS token"):
        load_pm(d)


def test_pickle_weights_need_opt_in(tiny_models, tmp_path):
    from transformers import AutoModelForCausalLM

    d = tmp_path / "pickled"
    m = AutoModelForCausalLM.from_pretrained(tiny_models[0])
    m.save_pretrained(d, safe_serialization=False)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_models[0] / name, d)
    assert not list(d.glob("*.safetensors"))
    with pytest.raises(SeamError, match="--allow-pickle"):
        load_pm(d)
    assert load_pm(d, allow_pickle=True, device="cpu").model is not None


def test_weights_missing(tiny_models, tmp_path):
    d = tmp_path / "noweights"
    d.mkdir()
    shutil.copy(tiny_models[0] / "config.json", d)
    with pytest.raises(SeamError, match="no weight files"):
        load_pm(d)


def test_causal_lm_as_rm_gets_fresh_head_with_warning(tiny_models):
    with pytest.warns(UserWarning, match="randomly initialised"):
        rm = load_rm(tiny_models[0], device="cpu")
    assert rm.model.config.num_labels == 1


def test_fingerprint_changes_with_weights(tiny_models, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(tiny_models[0], d)
    a = fingerprint(d)
    assert a == fingerprint(tiny_models[0])
    with open(d / "model.safetensors", "r+b") as fh:
        fh.seek(-16, 2)
        fh.write(b"\x00" * 16)
    assert fingerprint(d) != a


def test_bad_device_and_dtype(tiny_models):
    with pytest.raises(SeamError, match="--dtype"):
        load_pm(tiny_models[0], dtype="float8")
    with pytest.raises(SeamError, match="--device"):
        load_pm(tiny_models[0], device="tpu")


def test_peft_adapter_applied(tiny_models, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_models[0])
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    plain = load_pm(tiny_models[0], device="cpu")
    adapted = load_pm(tiny_models[0], adapter=tmp_path / "adapter", device="cpu")
    ids = torch.tensor([[1, 5, 9, 20]])
    with torch.inference_mode():
        assert not torch.allclose(plain.model(ids).logits, adapted.model(ids).logits)
    assert adapted.fingerprint != plain.fingerprint
    with pytest.raises(SeamError, match="not a PEFT adapter"):
        load_pm(tiny_models[0], adapter=tmp_path)
