"""`adv --search batched`: a greedy hill-climb that scores every instruction's candidates in one RM call per round.

The TextAttack path (`seam.negatives.adv_attack`) attacks one instruction at a time. Here all
instructions move together: each round, every active instruction proposes edits of its best
text(s), ALL candidates of ALL active instructions go to `RewardScorer.score(prompts, responses)`
in one call (it de-duplicates, sorts by length and packs batches itself), and each instruction
moves to its best texts: it expands the ``beam`` best texts scored so far that can still be
edited (1: greedy hill-climb; when the best text has no edit left, the next best is taken). An
instruction stops when it has ``k`` successful texts (R >= gold + margin), its ``query_budget`` is
spent, or no edit is left. No TextAttack, nothing from `seam.testbed`.

Transformations (offline, deterministic for a seed), at word positions of the current text:

* HotFlip swaps (with ``gradient``, the default): single-token words v with the largest
  first-order gain (e_v - e_t)·dR/de_t, from one batched backward pass per round over the texts
  being expanded (`Gradients`; also gives each word's saliency, which orders the positions; swaps
  at the 2 x ``max_candidates`` most promising positions of each text);
* nearest single-token words in the RM's own input-embedding space (`neighbour_table`,
  TextFooler-like, computed once per run for all words of all starts in a few matrix products);
* character edits (`char_edits`, DeepWordBug-like: neighbour swap, deletion, duplication,
  keyboard typo inside the word, first letter kept; shared with the TextAttack recipes);
* word deletion, adjacent word swap (both words count as changed), word duplication.

Constraints as in the TextAttack path: only the first ``max_words`` words, stopwords never touched
(NLTK's English list, compared case-insensitively), no word changed twice, at most
``max(1, ceil(max_modify_rate * words of the start))`` word changes. Word order: positions whose
edits raised the reward last round first (best gain first), then the others by gradient saliency
(black-box: in an order seeded by (seed, instruction id)); positions whose edits gained nothing
come last. Per text and round: up to ``max_candidates`` positions, the transformations
interleaved per position; per instruction and round at most ``round_candidates`` new texts
(never more than its budget left, nor, once it has a success, more than the successes it lacks
plus 2; a text is never scored twice); one RM call holds at most
``round_texts`` texts (later instructions wait for a free place).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ..textattack_env import ENGLISH_STOPWORDS
from .corrupt import text_rng

STOPWORDS = frozenset(ENGLISH_STOPWORDS)
WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")  # letters/digits, inner apostrophes and hyphens kept
WORD_TOKEN = re.compile(r" [A-Za-z]{2,}")  # a vocabulary entry that is one whole word after a space
QWERTY = {c: n for c, n in zip("qwertyuiopasdfghjklzxcvbnm",
                              ["wa", "qes", "wrd", "etf", "ryg", "tuh", "yij", "uok", "ipl", "ol", "qsz", "awdx",
                               "sefc", "drgv", "fthb", "gyjn", "hukm", "jilm", "kop", "zsx", "xdc", "cfv", "vgb",
                               "bhn", "njm", "mk"])}


# ============================================================================ word-level helpers (shared)


def char_edits(word: str, max_candidates: int, seed: int = 0) -> list[str]:
    """Up to `max_candidates` typos of `word` (alphabetic, >= 3 letters), picked by an RNG seeded from (seed, word)."""
    if len(word) < 3 or not word.isalpha():
        return []
    cands = set()
    for j in range(1, len(word) - 1):
        cands.add(word[:j] + word[j + 1] + word[j] + word[j + 2:])  # swap neighbours
        cands.add(word[:j] + word[j + 1:])  # delete
    for j in range(1, len(word)):
        cands.add(word[:j] + word[j] + word[j:])  # duplicate
        for c in QWERTY.get(word[j].lower(), ""):
            cands.add(word[:j] + (c.upper() if word[j].isupper() else c) + word[j + 1:])
    cands.discard(word)
    ordered = sorted(cands)
    pick = text_rng(seed, "char", word).permutation(len(ordered))[:max_candidates]
    return [ordered[int(i)] for i in sorted(pick)]


def match_case(template: str, word: str) -> str:
    return word[:1].upper() + word[1:] if template[:1].isupper() else word


def word_vocab(tokenizer, embeddings: torch.Tensor) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Single-token words (" word" tokens) of the RM vocabulary: (words, token ids, unit embeddings)."""
    n = min(len(tokenizer), embeddings.shape[0])
    decoded = tokenizer.batch_decode([[i] for i in range(n)])
    words, ids, seen = [], [], set()
    for i, s in enumerate(decoded):
        if WORD_TOKEN.fullmatch(s) and s[1:] not in seen:
            seen.add(s[1:])
            words.append(s[1:])
            ids.append(i)
    ids_t = torch.tensor(ids, dtype=torch.long, device=embeddings.device)
    emb = embeddings.index_select(0, ids_t).float() if ids else embeddings[:0].float()
    unit = emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return words, ids_t, unit


def neighbour_table(tokenizer, embeddings: torch.Tensor, words: Sequence[str], max_candidates: int,
                    min_cos: float = 0.0, vocab: tuple | None = None, chunk: int = 1024) -> dict[str, list[str]]:
    """For each alphabetic word (>= 2 letters): its `max_candidates` nearest vocabulary words by cosine to
    the mean embedding of its tokens (case matched, the word itself excluded). Vectorised, in chunks.
    `vocab`: `word_vocab`'s result when the caller has it."""
    todo = sorted({w for w in words if w.isalpha() and len(w) >= 2})
    vocab, _, unit = vocab if vocab is not None else word_vocab(tokenizer, embeddings)
    out: dict[str, list[str]] = {w: [] for w in todo}
    if not todo or not vocab:
        return out
    top_n = min(len(vocab), max_candidates + 4)
    with torch.inference_mode():
        for a in range(0, len(todo), chunk):
            part = todo[a:a + chunk]
            enc = tokenizer([" " + w for w in part], add_special_tokens=False)["input_ids"]
            lens = [len(e) for e in enc]
            flat = torch.tensor([t for e in enc for t in e], dtype=torch.long, device=embeddings.device)
            offsets = torch.tensor([0, *np.cumsum(lens)[:-1].tolist()], dtype=torch.long, device=embeddings.device)
            vec = torch.nn.functional.embedding_bag(flat, embeddings, offsets, mode="mean").float()
            vec = vec / vec.norm(dim=1, keepdim=True).clamp_min(1e-8)
            top = torch.topk(vec @ unit.T, top_n, dim=1)
            for w, n_tok, vals, idx in zip(part, lens, top.values.tolist(), top.indices.tolist()):
                if n_tok == 0:
                    continue
                found = out[w]
                for c, j in zip(vals, idx):
                    if vocab[j].lower() != w.lower() and c >= min_cos:
                        found.append(match_case(w, vocab[j]))
                    if len(found) >= max_candidates:
                        break
    return out


# ============================================================================ texts as words


@dataclass(frozen=True)
class Words:
    """A text as separators and words (``seps[i]`` precedes ``words[i]``; one more separator than words),
    each word with the start word it holds (-1 for an inserted copy) and whether it was changed."""

    seps: tuple[str, ...]
    words: tuple[str, ...]
    slots: tuple[int, ...]
    locked: tuple[bool, ...]
    changes: int = 0

    @classmethod
    def parse(cls, text: str) -> "Words":
        seps, words, pos = [], [], 0
        for m in WORD.finditer(text):
            seps.append(text[pos:m.start()])
            words.append(m.group())
            pos = m.end()
        seps.append(text[pos:])
        return cls(tuple(seps), tuple(words), tuple(range(len(words))), (False,) * len(words))

    @property
    def text(self) -> str:
        return "".join(s + w for s, w in zip(self.seps, self.words)) + self.seps[-1]

    def spans(self) -> np.ndarray:
        """[n_words, 2] character span of each word in `text`."""
        lens = np.array([len(x) for pair in zip(self.seps, self.words) for x in pair], dtype=np.int64)
        ends = np.cumsum(lens)
        return np.stack([ends[1::2] - lens[1::2], ends[1::2]], axis=1) if len(lens) else np.zeros((0, 2), np.int64)

    def _locked_at(self, *idx: int) -> tuple[bool, ...]:
        return tuple(True if i in idx else x for i, x in enumerate(self.locked))

    def replace(self, i: int, new: str) -> "Words":
        words = self.words[:i] + (new,) + self.words[i + 1:]
        return Words(self.seps, words, self.slots, self._locked_at(i), self.changes + 1)

    def delete(self, i: int) -> "Words":
        before, after = self.seps[i], self.seps[i + 1]
        keep = after if len(after.strip()) > len(before.strip()) else before  # keep the one with punctuation
        seps = self.seps[:i] + (keep,) + self.seps[i + 2:]
        cut = lambda t: t[:i] + t[i + 1:]  # noqa: E731
        return Words(seps, cut(self.words), cut(self.slots), cut(self.locked), self.changes + 1)

    def swap(self, i: int) -> "Words":
        w, s = self.words, self.slots
        words = w[:i] + (w[i + 1], w[i]) + w[i + 2:]
        slots = s[:i] + (s[i + 1], s[i]) + s[i + 2:]
        return Words(self.seps, words, slots, self._locked_at(i, i + 1), self.changes + 2)

    def duplicate(self, i: int) -> "Words":
        w = self.words[i]
        locked = self._locked_at(i)
        return Words(self.seps[:i + 1] + (" ",) + self.seps[i + 1:], self.words[:i + 1] + (w,) + self.words[i + 1:],
                     self.slots[:i + 1] + (-1,) + self.slots[i + 1:], locked[:i + 1] + (True,) + locked[i + 1:],
                     self.changes + 1)


# ============================================================================ gradients (HotFlip, word saliency)


class Gradients:
    """dR/d(input embeddings) for many (prompt, response) pairs in padded batches, one backward pass
    per batch: per word of each response, its saliency (L1 norm of the summed gradient over its
    tokens, as the TextAttack recipes rank words) and HotFlip swaps (single-token words v with the
    largest first-order gain (e_v - e_t)·g at the word's first token t, gain > 0)."""

    def __init__(self, loaded, scorer, vocab: tuple, max_candidates: int, batch_tokens: int):
        model = loaded.model
        self.loaded, self.model = loaded, model
        self.head = getattr(model, "score", None)  # the HF sequence classifiers' reward head
        decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
        self.base = decoder if decoder is not None else model.base_model
        self.template, self.max_len = scorer.encoder.template, scorer.encoder.max_len
        self.words, ids, _ = vocab
        self.emb = model.get_input_embeddings().weight.detach()
        self.vocab_emb = self.emb.index_select(0, ids).float()  # [V, d]
        self.max_candidates = max_candidates
        self.batch_tokens = max(batch_tokens // 4, self.max_len)
        self.passes = 0  # backward passes (texts)

    @property
    def available(self) -> bool:
        return self.head is not None and len(self.words) > 0

    def _batches(self, seqs: list[list[int]]):
        """Yield (indices, gradients [rows, width, d]) batch by batch (sorted by length, under the token budget)."""
        order = np.argsort([len(s) for s in seqs], kind="stable")
        dev = self.loaded.device
        a = 0
        while a < len(order):
            b = a + 1
            while b < len(order) and (b - a + 1) * len(seqs[order[b]]) <= self.batch_tokens:
                b += 1
            rows = [int(i) for i in order[a:b]]
            width = len(seqs[rows[-1]])
            ids = torch.full((len(rows), width), self.loaded.tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(rows):
                ids[r, :len(seqs[i])] = torch.as_tensor(seqs[i])
                mask[r, :len(seqs[i])] = 1
            ids, mask = ids.to(dev), mask.to(dev)
            with torch.enable_grad():
                e = self.model.get_input_embeddings()(ids).detach().requires_grad_(True)
                hidden = self.base(inputs_embeds=e, attention_mask=mask).last_hidden_state
                last = hidden[torch.arange(len(rows), device=hidden.device), (mask.sum(1) - 1).to(hidden.device)]
                reward = self.head(last)[:, self.loaded.reward_label]
                (grad,) = torch.autograd.grad(reward.float().sum(), e)
            self.passes += len(rows)
            yield rows, grad.float()
            a = b

    def _flips(self, rows: list[torch.Tensor], current: list[int], words: list[str]) -> list[list[str]]:
        """HotFlip swaps for gradient rows g at tokens t: words v with the largest (e_v - e_t)·g > 0."""
        gm = torch.stack(rows)  # [P, d]
        cur = (self.emb[torch.as_tensor(current, device=self.emb.device)].float().to(gm.device) * gm).sum(1)
        top = torch.topk(gm @ self.vocab_emb.T.to(gm.device) - cur[:, None], min(len(self.words), self.max_candidates + 4),
                         dim=1)
        out = []
        for word, vals, idx in zip(words, top.values.tolist(), top.indices.tolist()):
            got = [match_case(word, self.words[j]) for v, j in zip(vals, idx)
                   if v > 0 and self.words[j].lower() != word.lower()]
            out.append(got[:self.max_candidates])
        return out

    def __call__(self, items: list[tuple[str, "Words", list[int], tuple]]) -> list[tuple[dict, dict]]:
        """For each (prompt, words, eligible positions, hot slots): ({slot: saliency} for every word,
        {slot: HotFlip swaps}) for the hot positions and the most salient others (2 x max_candidates in all)."""
        rendered = [self.template.render(p, w.text) for p, w, _, _ in items]
        enc = self.loaded.tokenizer([r.text for r in rendered], add_special_tokens=True, return_offsets_mapping=True)
        seqs = [ids[:self.max_len] for ids in enc["input_ids"]]
        results: list = [None] * len(items)
        for batch, grad in self._batches(seqs):
            rows, current, where = [], [], []
            for r, k in enumerate(batch):
                _, w, eligible, hot = items[k]
                g = grad[r, :len(seqs[k])]
                offs = np.asarray(enc["offset_mapping"][k][:self.max_len], dtype=np.int64).reshape(-1, 2)
                spans = w.spans() + rendered[k].response_start
                inside = ((offs[None, :, 0] < spans[:, 1:2]) & (offs[None, :, 1] > spans[:, 0:1])
                          & (offs[None, :, 1] > offs[None, :, 0]))  # [words, tokens]
                sal = (torch.as_tensor(inside, dtype=g.dtype, device=g.device) @ g).abs().sum(1).tolist()
                results[k] = ({w.slots[i]: sal[i] for i in range(len(w.words))}, {})
                first = [i for i in eligible if w.slots[i] in hot]
                first += sorted((i for i in eligible if i not in first), key=lambda i: -sal[i])
                for i in first[:2 * self.max_candidates]:
                    toks = np.flatnonzero(inside[i])
                    if len(toks):
                        rows.append(g[toks[0]])
                        current.append(seqs[k][toks[0]])
                        where.append((k, i))
            if rows:
                for (k, i), got in zip(where, self._flips(rows, current, [items[k][1].words[i] for k, i in where])):
                    results[k][1][items[k][1].slots[i]] = got
        return results


# ============================================================================ the search


@dataclass
class SearchResult:
    pool: list  # (text, reward, words changed) for every perturbed text scored
    success: bool
    queries: int  # RM forward queries of this instruction's search
    grad_calls: int = 0  # backward passes (texts) of this instruction's search


@dataclass
class _Node:
    words: Words
    reward: float
    hot: tuple = ()  # start-word slots whose edits raised the parent's reward, best gain first
    cold: frozenset = frozenset()  # slots whose edits gained nothing from an ancestor: tried last
    exhausted: bool = False  # every allowed edit of this text has been scored
    saliency: dict | None = None  # slot -> gradient saliency (None: not computed)
    flips: dict = field(default_factory=dict)  # slot -> HotFlip swaps


@dataclass
class _Job:
    prompt: str
    threshold: float
    order: list[int]  # seeded order of the start's word slots
    max_changes: int
    frontier: list[_Node]  # the best editable texts so far, best first (the beam is its head)
    avoid: set[str]  # texts never to score again: the start and every text scored
    excluded: str  # the gold answer, stripped: never counted as a negative
    pool: dict[str, tuple[float, int]] = field(default_factory=dict)
    queries: int = 0
    grad_calls: int = 0
    successes: int = 0
    done: bool = False


def _interleave(lists: list[list]) -> list:
    out = []
    for j in range(max((len(x) for x in lists), default=0)):
        out.extend(x[j] for x in lists if j < len(x))
    return out


class BatchedSearch:
    """The batched hill-climb for a loaded RM: rewards come from `scorer.score` (one call per round);
    the RM's tokenizer and input embeddings give the neighbour swaps, and, with ``cfg.gradient``, one
    batched backward pass per round the HotFlip swaps and the word order. ``rounds`` and ``rm_calls``
    count the last run's rounds and scorer calls."""

    def __init__(self, loaded, scorer, cfg):
        self.loaded, self.scorer, self.cfg = loaded, scorer, cfg
        self.rounds = self.rm_calls = 0
        self.frontier_size = max(4 * cfg.beam, 16)

    def _eligible(self, w: Words) -> list[int]:
        return [i for i in range(min(len(w.words), self.cfg.max_words))
                if not w.locked[i] and w.words[i].lower() not in STOPWORDS]

    def _edits(self, node: _Node, i: int, ok: set[int], neighbours: dict[str, list[str]], left: int) -> list[Words]:
        """Candidates at position `i`, the transformations interleaved."""
        cfg, w = self.cfg, node.words
        word = w.words[i]
        flips = [w.replace(i, t) for t in node.flips.get(w.slots[i], ())]
        near = [w.replace(i, t) for t in neighbours.get(word, ())]
        typos = [w.replace(i, t) for t in char_edits(word, cfg.max_candidates, cfg.seed)]
        single = [[w.delete(i)], [w.swap(i)] if i + 1 in ok and left >= 2 else [], [w.duplicate(i)]]
        return _interleave([flips, near, typos, *single])

    def _expand(self, job: _Job, node: _Node, quota: int, new: set[str], neighbours) -> list[tuple[int, Words]]:
        """Up to `quota` unscored edits of `node` at up to `max_candidates` positions: hot ones, then
        the others (by gradient saliency, else in the seeded order), cold ones last."""
        w = node.words
        left = job.max_changes - w.changes
        ok = set(self._eligible(w)) if left > 0 else set()
        at = {w.slots[i]: i for i in ok}
        first = [s for s in node.hot if s in at]
        rest = [s for s in job.order if s in at and s not in first]
        if node.saliency is not None:
            rest.sort(key=lambda s: -node.saliency.get(s, 0.0))  # stable: ties keep the seeded order
        order = first + [s for s in rest if s not in node.cold] + [s for s in rest if s in node.cold]
        lists = []
        for s in order:
            got = [(s, c) for c in self._edits(node, at[s], ok, neighbours, left)
                   if c.text.strip() and c.text not in job.avoid and c.text not in new]
            if got:
                lists.append(got)
            if len(lists) >= self.cfg.max_candidates:
                break
        if not lists:
            node.exhausted = True
        out = []
        for s, c in _interleave(lists):
            if c.text not in new:
                new.add(c.text)
                out.append((s, c))
            if len(out) >= quota:
                break
        return out

    def _with_gradients(self, jobs: list[_Job], grads: Gradients | None) -> None:
        """Saliency and HotFlip swaps for the beam of every job (texts that lack them), in one batched pass."""
        if grads is None:
            return
        todo = []
        for job in jobs:
            for node in [n for n in job.frontier if not n.exhausted][:self.cfg.beam]:
                if node.saliency is None and job.max_changes > node.words.changes:
                    todo.append((job, node))
        if not todo:
            return
        found = grads([(job.prompt, node.words, self._eligible(node.words), node.hot) for job, node in todo])
        for (job, node), (sal, flips) in zip(todo, found):
            node.saliency, node.flips = sal, flips
            job.grad_calls += 1

    def _propose(self, job: _Job, neighbours) -> list[tuple[_Node, int, Words]]:
        """(parent, start-word slot, candidate) for this round: at most round_candidates new texts, spread over the beam."""
        cfg = self.cfg
        budget = min(cfg.round_candidates, cfg.query_budget - job.queries)
        if job.successes:  # edits of a successful text mostly succeed too: ask for about what is missing
            budget = min(budget, cfg.k - job.successes + 2)
        out: list[tuple[_Node, int, Words]] = []
        new: set[str] = set()
        expanded = 0
        for node in job.frontier:
            if expanded >= cfg.beam or len(out) >= budget:
                break
            if node.exhausted:
                continue
            share = (budget - len(out)) // (cfg.beam - expanded)
            got = self._expand(job, node, max(share, 1), new, neighbours)
            if got:
                expanded += 1
                out.extend((node, s, c) for s, c in got)
        return out

    def _update(self, job: _Job, cands: list[tuple[_Node, int, Words]], rewards: np.ndarray) -> None:
        cfg = self.cfg
        job.queries += len(cands)
        gain: dict[tuple[int, int], float] = {}
        for (parent, s, cand), r in zip(cands, rewards.tolist()):
            t = cand.text
            job.avoid.add(t)
            if t.strip() != job.excluded:
                job.pool[t] = (r, cand.changes)
                job.successes += int(r >= job.threshold)
            key = (id(parent), s)
            gain[key] = max(gain.get(key, -math.inf), r - parent.reward)
        info = {}
        for parent in {id(p): p for p, _, _ in cands}.values():
            mine = sorted(((g, s) for (p, s), g in gain.items() if p == id(parent)), key=lambda x: (-x[0], x[1]))
            hot = tuple(s for g, s in mine if g > 0)
            dead = frozenset(s for g, s in mine if g <= 0)
            info[id(parent)] = (hot, dead)
            parent.hot, parent.cold = hot, parent.cold | dead
        nodes = [n for n in job.frontier if not n.exhausted]
        for (parent, s, cand), r in zip(cands, rewards.tolist()):
            if cand.changes < job.max_changes:  # a text at the change limit cannot be edited further
                hot, dead = info[id(parent)]
                nodes.append(_Node(cand, r, tuple(x for x in hot if x != s), parent.cold | dead))
        nodes.sort(key=lambda n: (-n.reward, n.words.text))
        job.frontier = nodes[:self.frontier_size]
        job.done = job.successes >= cfg.k or job.queries >= cfg.query_budget

    def run(self, ids: Sequence[str], prompts: Sequence[str], starts: Sequence[str], start_rewards: Sequence[float],
            thresholds: Sequence[float], golds: Sequence[str],
            progress: Callable[[int, int, str], None] | None = None) -> list[SearchResult]:
        cfg = self.cfg
        parsed = [Words.parse(s) for s in starts]
        emb = self.loaded.model.get_input_embeddings().weight.detach()
        vocab = word_vocab(self.loaded.tokenizer, emb)
        neighbours = neighbour_table(self.loaded.tokenizer, emb, [w.words[i] for w in parsed for i in self._eligible(w)],
                                     cfg.max_candidates, vocab=vocab)
        grads = Gradients(self.loaded, self.scorer, vocab, cfg.max_candidates, cfg.batch_tokens) if cfg.gradient else None
        grads = grads if grads is not None and grads.available else None
        jobs = []
        for i, (rid, w) in enumerate(zip(ids, parsed)):
            order = [int(x) for x in text_rng(cfg.seed, "adv-batch", str(rid), starts[i]).permutation(len(w.words))]
            jobs.append(_Job(prompts[i], float(thresholds[i]), order, max(1, math.ceil(cfg.max_modify_rate * len(w.words))),
                             [_Node(w, float(start_rewards[i]))], {starts[i]}, golds[i].strip()))
        capacity = max(1, cfg.round_texts // cfg.round_candidates)
        waiting = list(reversed(jobs))
        active: list[_Job] = []
        finished = 0
        self.rounds = self.rm_calls = 0
        while waiting or active:
            while waiting and len(active) < capacity:
                active.append(waiting.pop())
            self._with_gradients(active, grads)
            batch = [(job, self._propose(job, neighbours)) for job in active]
            for job, cands in batch:
                job.done = job.done or not cands
            batch = [(job, c) for job, c in batch if c]
            if batch:
                ps = [job.prompt for job, c in batch for _ in c]
                ts = [cand.text for _, c in batch for (_, _, cand) in c]
                rewards = np.asarray(self.scorer.score(ps, ts), dtype=np.float64)
                self.rm_calls += 1
                self.rounds += 1
                at = 0
                for job, c in batch:
                    self._update(job, c, rewards[at:at + len(c)])
                    at += len(c)
            still = [job for job in active if not job.done]
            finished += len(active) - len(still)
            active = still
            if progress:
                progress(finished, len(jobs), "attack")
        return [SearchResult([(t, r, n) for t, (r, n) in job.pool.items()],
                             any(r >= job.threshold for r, _ in job.pool.values()), job.queries, job.grad_calls)
                for job in jobs]
