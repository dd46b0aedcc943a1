"""The chunked scoring pipeline: bounded chunks, identical results for any chunking, resume."""

import numpy as np
import pandas as pd
import pytest

from seam.errors import SeamError
from seam.score.pipeline import ScoreConfig, SeamScorer

from helpers import random_texts


@pytest.fixture(scope="module")
def tables():
    prompts, responses = random_texts(15, seed=11, max_negs=4)
    ids = {p: f"q{i}" for i, p in enumerate(dict.fromkeys(prompts))}
    inst = pd.DataFrame({"id": list(ids.values()), "prompt": list(ids), "chosen": ["banana is a fruit"] * len(ids)})
    inst = pd.concat([inst, pd.DataFrame({"id": ["lonely"], "prompt": ["no negatives here"], "chosen": ["ok"]})])
    negs = pd.DataFrame({"id": [ids[p] for p in prompts], "variant": "contrast", "text": responses,
                         "meta": [{} for _ in prompts]})
    return inst.reset_index(drop=True), negs


def _run(tiny_loaded, inst, negs, chunk, done=()):
    pm, rm = tiny_loaded
    scorer = SeamScorer(pm, rm, ScoreConfig(chunk_instructions=chunk, batch_tokens=512))
    seen = []
    orig = scorer.pm_scorer.score

    def spy(prompts, responses, progress=None):
        seen.append(len(set(prompts)))
        return orig(prompts, responses, progress)

    scorer.pm_scorer.score = spy
    chunks = list(scorer.iter_chunks(inst, negs, done_ids=done))
    det = pd.concat([c.details for c in chunks], ignore_index=True)
    sc = pd.concat([c.scores for c in chunks], ignore_index=True)
    return chunks, det, sc, seen, scorer.stats


def test_chunks_are_bounded_and_results_do_not_depend_on_chunking(tiny_loaded, tables):
    inst, negs = tables
    chunks, det4, sc4, seen, stats = _run(tiny_loaded, inst, negs, 4)
    assert max(seen) <= 4  # the PM never sees more than one chunk of instructions at once
    assert len(chunks) == int(np.ceil(len(inst) / 4))
    _, det_all, sc_all, _, _ = _run(tiny_loaded, inst, negs, 1000)
    pd.testing.assert_frame_equal(det4, det_all, atol=1e-5)
    pd.testing.assert_frame_equal(sc4, sc_all, atol=1e-5)
    assert stats.without_negatives == 1 and "lonely" not in set(sc4["id"])
    assert len(det4) == len(negs)


def test_resume_skips_done_ids_and_completes_the_rest(tiny_loaded, tables):
    inst, negs = tables
    chunks, _, sc_full, _, _ = _run(tiny_loaded, inst, negs, 4)
    done = [i for c in chunks[:2] for i in c.ids]
    rest, _, sc_rest, _, _ = _run(tiny_loaded, inst, negs, 4, done=done)
    assert not set(done) & {i for c in rest for i in c.ids}
    first = pd.concat([c.scores for c in chunks[:2]])
    merged = pd.concat([first, sc_rest]).sort_values(["id", "variant"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(merged, sc_full.sort_values(["id", "variant"]).reset_index(drop=True), atol=1e-5)


def test_bad_config():
    for kwargs, flag in [({"weighting": "x"}, "--weighting"), ({"aggregate": "x"}, "--aggregate"),
                         ({"batch_tokens": 1}, "--batch-tokens"), ({"max_prompt_tokens": 0}, "--max-prompt-tokens"),
                         ({"side_by_side": "yes"}, "--side-by-side")]:
        with pytest.raises(SeamError, match=flag):
            ScoreConfig(**kwargs).validate()


def test_side_by_side_equals_one_after_the_other_and_reports_progress_on_the_caller(tiny_loaded, tables):
    import threading

    import torch

    inst, negs = tables
    pm, rm = tiny_loaded
    out = {}
    for mode in ("on", "off"):
        calls = []
        scorer = SeamScorer(pm, rm, ScoreConfig(chunk_instructions=6, batch_tokens=512, side_by_side=mode))
        assert scorer.side_by_side == (mode == "on")
        progress = lambda done, total, step: calls.append((done, total, step, threading.get_ident()))  # noqa: E731
        out[mode] = pd.concat([c.details for c in scorer.iter_chunks(inst, negs, progress=progress)], ignore_index=True)
        assert {c[3] for c in calls} == {threading.get_ident()}  # callbacks never run on a worker thread
        assert [c[0] for c in calls] == sorted(c[0] for c in calls)
        assert calls[-1][0] == calls[-1][1] == 2 * len(negs) + len(inst) - 1  # every sequence once (one instruction has no negatives)
        assert {c[2] for c in calls} == {"RM gold + negatives", "PM negatives"}
    pd.testing.assert_frame_equal(out["on"], out["off"], atol=1e-6)
    assert torch.get_num_threads() >= 1


def test_side_by_side_raises_a_workers_error_and_restores_threads(tiny_loaded, tables):
    import torch

    inst, negs = tables
    pm, rm = tiny_loaded
    before = torch.get_num_threads()
    scorer = SeamScorer(pm, rm, ScoreConfig(side_by_side="on"))

    def broken(prompts, responses, progress=None):
        raise SeamError("the RM broke")

    scorer.rm_scorer.score = broken
    with pytest.raises(SeamError, match="the RM broke"):
        list(scorer.iter_chunks(inst, negs))
    assert torch.get_num_threads() == before


def test_side_by_side_auto_needs_two_cpu_threads_and_small_models(tiny_loaded, monkeypatch):
    import torch

    from seam.score.pipeline import _want_side_by_side

    pm, rm = tiny_loaded
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert not _want_side_by_side("auto", pm, rm)
        assert _want_side_by_side("on", pm, rm)
        torch.set_num_threads(2)
        assert _want_side_by_side("auto", pm, rm) and not _want_side_by_side("off", pm, rm)
        monkeypatch.setattr(pm.model.config, "hidden_size", 576)  # SmolLM2's width: products already use the cores
        assert not _want_side_by_side("auto", pm, rm) and _want_side_by_side("on", pm, rm)
    finally:
        torch.set_num_threads(before)


def test_progress_reaches_the_total_with_repeated_negatives(tiny_loaded, tables):
    inst, negs = tables
    pm, rm = tiny_loaded
    twice = pd.concat([negs, negs.iloc[:5]], ignore_index=True)  # the same texts again: scored once, counted twice
    calls = []
    scorer = SeamScorer(pm, rm, ScoreConfig(side_by_side="off"))
    list(scorer.iter_chunks(inst, twice, progress=lambda d, t, s: calls.append((d, t))))
    assert calls[-1][0] == calls[-1][1] == 2 * len(twice) + len(inst) - 1
