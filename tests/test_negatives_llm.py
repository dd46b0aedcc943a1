"""llm negatives: prompt parsing, the rules and local backends, and the openai backend against a real
HTTP server on 127.0.0.1 that speaks the chat-completions API (429, 500, slow replies, cache)."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from seam.cli import main
from seam.data import load_negatives
from seam.errors import SeamError
from seam.negatives import LLMBuilder, LLMConfig, build_negatives
from seam.negatives.prompting import dedupe, paper_messages, split_answers

KEY = "sk-test-SECRET-123456"


def _frame(n=4, rejected=False):
    rows = [{"id": f"q{i}", "prompt": f"What is {i} plus {i}?", "chosen": f"{i} plus {i} is {2 * i}.",
             "rejected": f"It is {2 * i + 1}." if rejected else None, "meta": {}} for i in range(n)]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("reply,want", [
    ("Here are 3 worse answers:\n\n1. Paris is in Spain.\n2. It is 5.\n\n3) It depends.",
     ["Paris is in Spain.", "It is 5.", "It depends."]),
    ("**1.** foo\n**2.** bar", ["foo", "bar"]),
    ("Answer 1: aa\nAnswer 2: bb\nAnswer 3: cc", ["aa", "bb", "cc"]),
    ("Sure! Here they are:\n\nFirst para.\n\nSecond para.", ["First para.", "Second para."]),
    ("- a\n- b", ["a", "b"]),
    ("1. \"quoted\"\n2. Answer: labelled", ["quoted", "labelled"]),
    ("Only one answer.", ["Only one answer."]),
    ("", []),
])
def test_split_answers(reply, want):
    assert split_answers(reply) == want


def test_dedupe_drops_gold_and_near_copies():
    assert dedupe(["The answer is 4.", "the answer is 4", "It is 5!", "It is 5"], "The answer is 4!") == ["It is 5!"]


def test_paper_prompt_shows_question_and_answer_once():
    msgs = paper_messages("Why is the sky blue?", "Rayleigh scattering.", 7)
    text = json.dumps(msgs)
    assert "generate 7 distinct answers" in msgs[0]["content"]
    for part in ("factual inaccuracies", "misunderstandings of the core question", "irrelevant information",
                 "grammatical errors"):
        assert part in msgs[0]["content"]
    assert text.count("Rayleigh scattering.") == 1 and text.count("Why is the sky blue?") == 1


# ----------------------------------------------------------------------------- rules backend


def test_rules_backend_is_deterministic_distinct_and_never_gold():
    df = _frame(5)
    a, sa = build_negatives("llm", df, LLMConfig(k=6, backend="rules"))
    b, _ = build_negatives("llm", df, LLMConfig(k=6, backend="rules"))
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["id", "variant", "text", "meta"] and (a["variant"] == "llm").all()
    gold = dict(zip(df["id"], df["chosen"]))
    assert all(t.strip() != gold[i] for i, t in zip(a["id"], a["text"]))
    assert a.groupby("id")["text"].nunique().eq(a.groupby("id").size()).all()
    assert sa["per_instruction"]["max"] <= 6 and sa["model"] == "rules"


# ----------------------------------------------------------------------------- a real local server


class ChatServer:
    """A chat-completions server on 127.0.0.1. `plan` lists what the next requests get:
    "ok", "429", "500", "slow" (sleeps longer than the client timeout), "401", "404"; then "ok".
    "429:S" is a 429 whose Retry-After header says S seconds (plain "429" says 0, i.e. "no advice")."""

    def __init__(self, plan=(), slow_seconds=1.5, answers=None):
        self.plan = list(plan)
        self.slow_seconds = slow_seconds
        self.answers = answers
        self.requests = []
        self.times = []  # arrival time of each request (time.monotonic)
        self.auth = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    server.requests.append(body)
                    server.times.append(time.monotonic())
                    server.auth.append(self.headers.get("authorization"))
                    action = server.plan.pop(0) if server.plan else "ok"
                if not self.path.endswith("/chat/completions"):
                    action = "404"
                if action == "slow":
                    time.sleep(server.slow_seconds)
                if action.split(":")[0] in ("429", "500", "401", "404"):
                    code = int(action.split(":")[0])
                    retry_after = action.split(":")[1] if ":" in action else "0"
                    payload = {"error": {"message": f"test {code}", "type": "test", "code": code}}
                    self._send(code, payload, {"retry-after": retry_after} if code == 429 else {})
                    return
                self._send(200, server.reply(body))

            def _send(self, code, payload, headers=None):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def reply(self, body):
        k = int(re.search(r"generate (\d+) distinct", body["messages"][0]["content"]).group(1))
        q = re.search(r"\[Question\]\n(.*?)\n\n\[Answer\]", body["messages"][-1]["content"], re.S).group(1)
        answers = self.answers(q, k) if self.answers else [f"Wrong answer {j} about {q}" for j in range(1, k + 1)]
        content = "Here are the answers:\n\n" + "\n".join(f"{j}. {a}" for j, a in enumerate(answers, 1))
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 10 * k, "total_tokens": 50 + 10 * k}}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    return tmp_path


def _cfg(url, **kw):
    base = dict(k=5, backend="openai", model="test-model", base_url=url, timeout=0.5, max_retries=4, concurrency=2)
    base.update(kw)
    return LLMConfig(**base)


def test_openai_backend_survives_429_500_timeouts_and_rerun_is_cached(env):
    df = _frame(4)
    with ChatServer(plan=["429", "500", "slow", "429", "ok", "500"]) as srv:
        neg, stats = build_negatives("llm", df, _cfg(srv.url))
        first_requests = len(srv.requests)
        assert neg.groupby("id").size().to_dict() == {f"q{i}": 5 for i in range(4)}
        assert stats["errors"]["429"] == 2 and stats["errors"]["5xx"] == 2 and stats["errors"]["timeout"] == 1
        assert stats["retries"] == 5 and stats["failed"] == 0
        assert stats["requests"] == first_requests == 4 + 5
        assert stats["completion_tokens"] == 4 * 50 and stats["prompt_tokens"] == 4 * 50
        assert all(m["model"] == "test-model" and m["backend"] == "openai" and not m["cached"] for m in neg["meta"])
        assert all(a == f"Bearer {KEY}" for a in srv.auth)
        # the server saw the paper's prompt with k, and the question once
        assert "generate 5 distinct answers" in srv.requests[-1]["messages"][0]["content"]

        again, stats2 = build_negatives("llm", df, _cfg(srv.url))
        assert len(srv.requests) == first_requests  # a re-run costs nothing
        assert stats2["cache_hits"] == 4 and stats2["requests"] == 0 and stats2["completion_tokens"] == 0
        assert stats2["cached_tokens"] == 4 * (50 + 50)
        pd.testing.assert_frame_equal(neg[["id", "text"]], again[["id", "text"]])
        assert all(m["cached"] for m in again["meta"])
    # the key is never written to the cache
    for path in (env / "cache").rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="ignore")


def test_openai_client_retries_a_429_after_its_retry_after(env):
    # The backend has no retry loop of its own: the openai client retries and honours Retry-After (here 1 s,
    # longer than the client's own first backoff of at most 0.5 s); the backend only counts the attempts.
    with ChatServer(plan=["429:1"]) as srv:
        neg, stats = build_negatives("llm", _frame(1), _cfg(srv.url, k=3, timeout=5.0, max_rounds=1))
        assert len(srv.requests) == 2 and srv.requests[0] == srv.requests[1]
        assert srv.times[1] - srv.times[0] >= 0.95
        assert neg["text"].tolist() == [f"Wrong answer {j} about What is 0 plus 0?" for j in (1, 2, 3)]
        assert stats["errors"]["429"] == 1 and stats["retries"] == 1 and stats["requests"] == 2
        assert stats["failed"] == 0
    with ChatServer(plan=["429:1"]) as srv:  # max_retries=0: no retry, the instruction fails
        with pytest.raises(SeamError, match="every request"):
            build_negatives("llm", _frame(1), _cfg(srv.url, max_retries=0, max_rounds=1))
        assert len(srv.requests) == 1


def test_openai_second_round_tops_up_and_dedups(env):
    calls = {"n": 0}

    def answers(q, k):  # first reply: only two distinct answers (and a copy of the gold); then new ones
        calls["n"] += 1
        if calls["n"] <= 1:
            return ["Same wrong.", "same wrong", "0 plus 0 is 0.", "Other wrong."]
        return [f"Round two answer {j}" for j in range(k)]

    with ChatServer(answers=answers) as srv:
        neg, stats = build_negatives("llm", _frame(1), _cfg(srv.url, k=4, concurrency=1))
        assert neg["text"].tolist() == ["Same wrong.", "Other wrong.", "Round two answer 0", "Round two answer 1"]
        assert stats["rounds"] == 2 and len(srv.requests) == 2
        assert [m["round"] for m in neg["meta"]] == [0, 0, 1, 1]


def test_openai_gives_up_after_retries_and_counts_failures(env):
    with ChatServer(plan=["500"] * 50) as srv:
        with pytest.raises(SeamError, match="every request"):
            build_negatives("llm", _frame(2), _cfg(srv.url, max_retries=1, max_rounds=1))
        assert len(srv.requests) == 4


def test_openai_bad_key_and_unknown_route_stop_with_one_clear_error(env):
    with ChatServer(plan=["401"]) as srv:
        with pytest.raises(SeamError, match="refused the API key") as exc:
            build_negatives("llm", _frame(1), _cfg(srv.url))
        assert KEY not in str(exc.value)
    with ChatServer(plan=["404"]) as srv:
        with pytest.raises(SeamError, match="404.*--model and --base-url"):
            build_negatives("llm", _frame(1), _cfg(srv.url))
        assert len(srv.requests) == 1  # not retried


def test_openai_needs_a_model_and_a_key(env, monkeypatch):
    with pytest.raises(SeamError, match="--model"):
        LLMBuilder(LLMConfig(backend="openai")).build(_frame(1))
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(SeamError, match="OPENAI_API_KEY"):
        LLMBuilder(LLMConfig(backend="openai", model="m")).build(_frame(1))


def test_cli_llm_against_the_local_server(env, tmp_path, capsys):
    data = tmp_path / "rl.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Question {i}?", "chosen": f"Answer {i}."}) + "\n"
                            for i in range(3)))
    out = tmp_path / "negs.jsonl"
    with ChatServer(plan=["429"]) as srv:
        code = main(["negatives", "llm", "--data", str(data), "--out", str(out), "--k", "4", "--base-url", srv.url,
                     "--model", "test-model", "--timeout", "2", "--quiet"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "cache hits 0" in cap.out and "429 1" in cap.out
    assert KEY not in cap.out + cap.err + out.read_text()
    neg = load_negatives(out, known_ids=["q0", "q1", "q2"])
    assert len(neg) == 12 and (neg["meta"].map(lambda m: m["model"]) == "test-model").all()


# ----------------------------------------------------------------------------- local backend


def test_local_backend_samples_in_batches_from_a_tiny_model(tiny_loaded):
    from seam.negatives.llm_local import LocalBackend

    pm, _ = tiny_loaded
    cfg = LLMConfig(k=5, backend="local", max_new_tokens=12, batch_size=4, max_rounds=1, seed=1)
    neg, stats = LLMBuilder(cfg, backend=LocalBackend(cfg, loaded=pm)).build(_frame(2))
    assert stats["sequences"] == 10 and stats["new_tokens"] > 0
    assert neg.groupby("id").size().max() <= 5
    assert {m["flaw"] for m in neg["meta"]} <= {"factual inaccuracies", "a misunderstanding of the core question",
                                                "irrelevant information", "grammatical errors"}
    again, _ = LLMBuilder(cfg, backend=LocalBackend(cfg, loaded=pm)).build(_frame(2))
    pd.testing.assert_frame_equal(neg, again)  # seeded: the same samples


@pytest.mark.slow
def test_local_backend_with_smollm2(tmp_path, monkeypatch):
    from seam.assets import smollm2_gguf

    gguf = smollm2_gguf(required=False)
    if gguf is None:
        pytest.skip("SmolLM2 GGUF not fetched")
    model_dir = tmp_path / "smollm2"
    model_dir.mkdir()
    (model_dir / gguf.name).symlink_to(gguf)
    cfg = LLMConfig(k=4, backend="local", local_model=str(model_dir), max_new_tokens=40, batch_size=8, device="cpu")
    neg, stats = build_negatives("llm", _frame(2), cfg)
    assert len(neg) >= 4 and neg["text"].str.len().gt(0).all()
    assert stats["model"] == "smollm2"


def test_llm_on_real_stackexchange_text(env):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "stackexchange" / "beer.Posts.xml"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    from seam.data import ImportConfig, iter_import

    df = pd.DataFrame(list(iter_import("stackexchange", path, ImportConfig(limit=5, max_pairs_per_question=1))))
    rules, _ = build_negatives("llm", df, LLMConfig(k=8, backend="rules"))
    assert rules.groupby("id").size().min() >= 6  # long answers give many distinct corruptions
    with ChatServer() as srv:
        neg, stats = build_negatives("llm", df, _cfg(srv.url, k=6, max_prompt_chars=1500))
        assert stats["negatives"] == 30 and stats["fewer_than_k"] == 0
        assert all(len(r["messages"][-1]["content"]) <= 1500 * 2 + 40 for r in srv.requests)
