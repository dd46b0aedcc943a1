"""Chat data kept as messages end to end: TRL conversational rows import with their conversation,
`--template chat` renders it (system prompt included) with the DESIGN.md span rule, and the data
exports back to TRL's conversational format unchanged."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from seam.cli import main
from seam.data import ChatPrompt, export_trl_preference, export_trl_prompts, load_instructions, run_import, with_messages
from seam.data.chat import render_messages
from seam.errors import SeamError
from seam.models.scoring import Encoder, PolicyScorer, RewardScorer
from seam.models.templates import get_template

SYSTEM = {"role": "system", "content": "You answer in one short sentence."}
TRL_CONVERSATIONAL = [
    {"prompt": [SYSTEM, {"role": "user", "content": "What color is the sky?"}],
     "chosen": [{"role": "assistant", "content": "The sky is blue."}],
     "rejected": [{"role": "assistant", "content": "The sky is green."}]},
    {"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
                {"role": "user", "content": "Name a fruit."}],
     "chosen": [{"role": "assistant", "content": "An apple."}],
     "rejected": [{"role": "assistant", "content": "A rock."}]},
    {"prompt": [{"role": "user", "content": "What is two plus two?"}],
     "chosen": [{"role": "assistant", "content": "Two plus two is four."}],
     "rejected": [{"role": "assistant", "content": "Two plus two is six.\n"}]},
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _import(tmp_path, ext="jsonl"):
    src = _jsonl(tmp_path / "trl_chat.jsonl", TRL_CONVERSATIONAL)
    out = tmp_path / f"rl.{ext}"
    stats = run_import("trl", src, out)
    assert stats["pairs_written"] == 3
    return out


# ------------------------------------------------------------------------------------- contract


@pytest.mark.parametrize("ext", ["jsonl", "csv", "parquet", "hf"])
def test_trl_conversational_rows_keep_their_messages(tmp_path, ext):
    pytest.importorskip("datasets")
    df = load_instructions(_import(tmp_path, ext))
    first = df["prompt"][0]
    assert isinstance(first, ChatPrompt)
    assert first == f"System: {SYSTEM['content']}\n\nUser: What color is the sky?"  # readable text, as before
    assert first.messages == TRL_CONVERSATIONAL[0]["prompt"]  # the system prompt is kept
    assert df["meta"][1]["messages"] == TRL_CONVERSATIONAL[1]["prompt"]
    assert df["chosen"].tolist() == ["The sky is blue.", "An apple.", "Two plus two is four."]
    assert df["rejected"][2] == "Two plus two is six.\n"  # conversational replies are kept exactly


def test_plain_rows_are_unchanged(tmp_path):
    rows = [{"id": "a", "prompt": "The sky is", "chosen": " blue.", "rejected": " green.", "meta": {"k": 1}}]
    df = load_instructions(_jsonl(tmp_path / "plain.jsonl", rows))
    assert type(df["prompt"][0]) is str and df.to_dict("records") == rows


def test_contract_reads_trl_conversational_files_directly(tmp_path):
    rows = [{"id": i, **r} for i, r in enumerate(TRL_CONVERSATIONAL)]
    df = load_instructions(_jsonl(tmp_path / "direct.jsonl", rows))
    assert df["prompt"][0].messages == TRL_CONVERSATIONAL[0]["prompt"]
    assert df["meta"][0] == {"messages": TRL_CONVERSATIONAL[0]["prompt"]}
    assert df["chosen"][1] == "An apple." and df["rejected"][1] == "A rock."


@pytest.mark.parametrize("bad, message", [
    ({"chosen": [{"role": "user", "content": "x"}]}, "last turn is 'user', not 'assistant'"),
    ({"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}, "holds 2 messages"),
    ({"prompt": "q", "meta": {"messages": "not a list"}}, "meta.messages must be a list"),
    ({"prompt": [{"role": "user", "content": "  "}]}, "chat messages without any text"),
])
def test_bad_chat_rows_fail_with_the_row(tmp_path, bad, message):
    row = {"id": "a", "prompt": [{"role": "user", "content": "q"}], "chosen": "c", **bad}
    with pytest.raises(SeamError, match=r"line 1: .*") as err:
        load_instructions(_jsonl(tmp_path / "bad.jsonl", [row]))
    assert message in str(err.value)


def test_chat_prompt_behaves_as_its_text():
    msgs = [SYSTEM, {"role": "user", "content": "Name a fruit."}]
    p = ChatPrompt(render_messages(msgs), msgs)
    assert p == render_messages(msgs) and hash(p) == hash(str(p)) and {p: 1}[str(p)] == 1
    assert pickle.loads(pickle.dumps(p)).messages == msgs
    cut = p[: len("System: You answer")]  # a prefix cut keeps the messages inside it
    assert cut == "System: You answer" and cut.messages == [{**SYSTEM, "content": "You answer"}]
    assert p[:].messages == msgs and p[3:6] == str(p)[3:6]
    df = with_messages(pd.DataFrame({"prompt": ["x"], "meta": [{"messages": msgs}]}))
    assert df["prompt"][0].messages == msgs


# ----------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_trl_conversational_round_trip(tmp_path, ext):
    df = load_instructions(_import(tmp_path, ext))
    out = export_trl_preference(df, tmp_path / "back.jsonl")
    assert _read_jsonl(out) == TRL_CONVERSATIONAL
    prompts = export_trl_prompts(df, tmp_path / f"prompts.{ext}")
    back = pd.read_parquet(prompts) if ext == "parquet" else pd.DataFrame(_read_jsonl(prompts))
    assert [list(map(dict, p)) for p in back["prompt"]] == [r["prompt"] for r in TRL_CONVERSATIONAL]
    std = export_trl_preference(df, tmp_path / "std.jsonl", conversational=False)
    assert _read_jsonl(std)[0]["prompt"] == df["prompt"][0]


def test_cli_export_trl_and_store_layouts(tmp_path, capsys):
    from db import files

    data = _import(tmp_path)
    assert main(["export", "trl", "--data", str(data), "--out", str(tmp_path / "dpo.jsonl")]) == 0
    assert _read_jsonl(tmp_path / "dpo.jsonl") == TRL_CONVERSATIONAL
    assert main(["export", "trl", "--data", str(data), "--prompts", "--format", "standard",
                 "--out", str(tmp_path / "p.jsonl")]) == 0
    assert _read_jsonl(tmp_path / "p.jsonl")[1]["prompt"].startswith("User: Hi\n\nAssistant: Hello!")
    # the store keeps prompt as text and messages in meta: its frames export the same way
    stored = load_instructions(data).assign(prompt=lambda d: [str(p) for p in d["prompt"]])
    files.export_instructions(stored, tmp_path / "store.jsonl", "trl-preference")
    assert _read_jsonl(tmp_path / "store.jsonl") == TRL_CONVERSATIONAL
    capsys.readouterr()


# ----------------------------------------------------------------------------------- rendering


def _manual_logprob(loaded, text, start, end):
    """DESIGN.md section 2 by hand: tokens overlapping [start, end) plus the appended EOS."""
    import torch

    tok = loaded.tokenizer
    enc = tok(text, add_special_tokens=True, return_offsets_mapping=True)
    ids = list(enc["input_ids"]) + [tok.eos_token_id]
    scored = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if a < end and b > start and b > a] + [len(ids) - 1]
    with torch.inference_mode():
        logits = loaded.model(torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    return float(sum(logp[i - 1, ids[i]] for i in scored)), len(scored), ids


def test_chat_template_renders_the_whole_conversation(tiny_loaded):
    pm, rm = tiny_loaded
    tok = pm.tokenizer
    tpl = get_template("chat", tok)
    df = with_messages(pd.DataFrame({"prompt": ["readable"], "meta": [{"messages": TRL_CONVERSATIONAL[1]["prompt"]}]}))
    prompt, reply = df["prompt"][0], "An apple."
    r = tpl.render(prompt, reply)
    full = TRL_CONVERSATIONAL[1]["prompt"] + [{"role": "assistant", "content": reply}]
    assert r.text == tok.apply_chat_template(full, tokenize=False)  # every turn, in order
    assert r.text[r.response_start:r.response_end] == reply
    assert r.text.count("<|im_start|>") == 4
    plain = tpl.render("Name a fruit.", reply)  # a plain prompt: one user turn
    assert plain.text == tok.apply_chat_template([{"role": "user", "content": "Name a fruit."},
                                                  {"role": "assistant", "content": reply}], tokenize=False)
    # a reply that also occurs in the conversation is located in the assistant turn, not earlier
    echo = tpl.render(ChatPrompt("x", [{"role": "user", "content": "Say Hi"}]), "Hi")
    assert echo.response_start > echo.text.index("assistant")


def test_chat_span_rule_and_scores_match_a_manual_computation(tiny_loaded, tmp_path):
    pm, rm = tiny_loaded
    df = load_instructions(_import(tmp_path))
    prompts = df["prompt"].tolist() * 2
    responses = df["chosen"].tolist() + df["rejected"].tolist()
    tpl = get_template("chat", pm.tokenizer)
    lp, tok, _ = PolicyScorer(pm, tpl, batch_tokens=256).score(prompts, responses)
    rewards = RewardScorer(rm, get_template("chat", rm.tokenizer), batch_tokens=256).score(prompts, responses)
    enc = Encoder(pm.tokenizer, tpl, 512, append_eos=True).encode(prompts, responses)
    import torch

    for k, (p, resp) in enumerate(zip(prompts, responses)):
        full = p.messages + [{"role": "assistant", "content": resp}]
        text = pm.tokenizer.apply_chat_template(full, tokenize=False)
        head = pm.tokenizer.apply_chat_template(p.messages, tokenize=False, add_generation_prompt=True)
        assert text.startswith(head)
        want_lp, want_n, ids = _manual_logprob(pm, text, len(head), len(head) + len(resp))
        assert enc[k].ids == ids and tok[k] == want_n == len(enc[k].scored)
        assert lp[k] == pytest.approx(want_lp, abs=1e-4)
        decoded = pm.tokenizer.decode(ids[enc[k].scored[0]:enc[k].scored[-1]])
        assert resp.strip() in decoded and "system" not in decoded  # only the reply (and EOS) are scored
        with torch.inference_mode():
            want_r = rm.model(torch.tensor([ids[:-1]])).logits[0, 0].item()
        assert rewards[k] == pytest.approx(want_r, abs=1e-4)
    # the conversation matters: the same reply after a bare user turn scores differently
    bare, _, _ = PolicyScorer(pm, tpl).score([str(prompts[0])], [responses[0]])
    assert abs(bare[0] - lp[0]) > 1e-6


def test_prompt_truncation_cuts_the_conversation(tiny_loaded, tmp_path):
    pm, _ = tiny_loaded
    df = load_instructions(_import(tmp_path))
    tpl = get_template("chat", pm.tokenizer)
    enc = Encoder(pm.tokenizer, tpl, 512, max_prompt_tokens=3, append_eos=True).encode([df["prompt"][0]], ["Blue."])
    text = pm.tokenizer.decode(enc[0].ids)
    assert "What color" not in text and "Blue." in text


def test_bos_is_not_doubled_when_the_tokenizer_adds_it():
    from tokenizers import processors

    from seam.models.tiny import build_tokenizer

    tok = build_tokenizer()
    tok.bos_token = "<|endoftext|>"
    bos = tok.bos_token_id
    tok._tokenizer.post_processor = processors.TemplateProcessing(single="<|endoftext|> $A", pair="<|endoftext|> $A $B",
                                                                  special_tokens=[("<|endoftext|>", bos)])
    tok.chat_template = "{{ bos_token }}" + tok.chat_template
    assert tok("x")["input_ids"][0] == bos
    tpl = get_template("chat", tok)
    r = tpl.render("Name a fruit.", "An apple.")
    ids = tok(r.text, add_special_tokens=True)["input_ids"]
    assert ids.count(bos) == 1 and r.text[r.response_start:r.response_end] == "An apple."


def test_score_cli_with_chat_data_writes_hf_folders(tiny_models, tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    data = _import(tmp_path)
    negs = [{"id": f"trl_chat-{i + 1}", "variant": "llm", "text": t}
            for i in range(3) for t in ("No idea.", "Maybe purple.")]
    _jsonl(tmp_path / "negs.jsonl", negs)
    pm_dir, rm_dir = tiny_models
    code = main(["score", "--pm", str(pm_dir), "--rm", str(rm_dir), "--data", str(data), "--negatives",
                 str(tmp_path / "negs.jsonl"), "--template", "chat", "--out", str(tmp_path / "scores.hf"),
                 "--details", str(tmp_path / "details.hf")])
    assert code == 0, capsys.readouterr().err
    scores = datasets.load_from_disk(str(tmp_path / "scores.hf")).to_pandas()
    details = datasets.load_from_disk(str(tmp_path / "details.hf")).to_pandas()
    assert len(scores) == 3 and len(details) == 6 and np.isfinite(details["pm_logprob_sum"]).all()
    capsys.readouterr()


# ----------------------------------------------------------------------------------- SmolLM2


@pytest.fixture(scope="module")
def smol_tokenizer(tmp_path_factory):
    from seam.assets import smollm2_gguf

    gguf = smollm2_gguf(required=False)
    if gguf is None:
        pytest.skip("SmolLM2 GGUF not fetched (make setup)")
    from transformers import AutoTokenizer

    from seam.models.loading import resolve_checkpoint

    d = tmp_path_factory.mktemp("smol")
    (d / gguf.name).symlink_to(gguf)
    return AutoTokenizer.from_pretrained(str(resolve_checkpoint(d, "--pm")))  # converted once, then cached


def test_chat_template_on_smollm2_tokenizer(smol_tokenizer):
    tok = smol_tokenizer
    tpl = get_template("chat", tok)
    msgs = TRL_CONVERSATIONAL[0]["prompt"]
    r = tpl.render(ChatPrompt("readable", msgs), "The sky is blue.")
    assert r.text.startswith(f"<|im_start|>system\n{SYSTEM['content']}<|im_end|>")  # our system prompt, not the default
    assert r.text[r.response_start:r.response_end] == "The sky is blue."
    assert r.text[r.response_end:] == "<|im_end|>\n"
    plain = tpl.render("What color is the sky?", "Blue.")
    assert "You are a helpful AI assistant named SmolLM" in plain.text  # the template's default system prompt
    enc = Encoder(tok, tpl, 2048, append_eos=True).encode([ChatPrompt("readable", msgs)], ["The sky is blue."])[0]
    assert tok.decode([enc.ids[s] for s in enc.scored[:-1]]).strip() == "The sky is blue."
    assert enc.ids[enc.scored[-1]] == tok.eos_token_id


def test_store_frames_score_with_their_conversation(tiny_loaded, tmp_path):
    """Frames read back from the store hold plain prompts + meta.messages: SeamScorer scores them with the
    conversation, exactly as the frame `load_instructions` gives (the path of the dashboard's score job)."""
    from db import open_store
    from seam.score.pipeline import ScoreConfig, SeamScorer

    pm, rm = tiny_loaded
    df = load_instructions(_import(tmp_path))
    negs = pd.DataFrame({"id": df["id"], "variant": "llm", "text": df["rejected"]})
    with open_store(tmp_path / "store") as store:
        ds = store.import_instructions("chat", df)
        stored = store.instructions(ds)
    assert not any(isinstance(p, ChatPrompt) for p in stored["prompt"])  # plain text in the store
    cfg = ScoreConfig(template="chat")
    direct = pd.concat([c.details for c in SeamScorer(pm, rm, cfg).iter_chunks(df, negs)])
    via_store = pd.concat([c.details for c in SeamScorer(pm, rm, cfg).iter_chunks(stored, negs)])
    assert np.allclose(direct["pm_logprob_sum"], via_store["pm_logprob_sum"], atol=1e-5)
    assert np.allclose(direct["rm_neg"], via_store["rm_neg"], atol=1e-5)
