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
                         ({"batch_tokens": 1}, "--batch-tokens"), ({"max_prompt_tokens": 0}, "--max-prompt-tokens")]:
        with pytest.raises(SeamError, match=flag):
            ScoreConfig(**kwargs).validate()
