"""TextAttack parts for attacking a scalar reward model: goal, model wrapper, transformations, recipes.

Importing this module imports TextAttack through `seam.textattack_env.import_textattack` (offline:
the project's NLTK folder and TextAttack's post-install marker are prepared first, idempotently).

* `RewardModelWrapper`: the victim. ``__call__(responses)`` returns R(I∘response) for the current
  instruction through `RewardScorer` (batched), counting queries; ``gradients(response)`` gives
  d R / d input-embeddings for white-box pieces, counting backward passes.
* `RewardGoal`: success when R(I∘r*) >= threshold (gold reward + margin); score = reward -
  threshold. It records every text it scores, which is the candidate pool for the k negatives.
* Transformations (all offline): `CharEdits` (deterministic character swaps/deletions/
  duplications/keyboard typos; `adv_batch.char_edits`, shared with the batched search),
  `EmbeddingNeighbourSwap` (nearest words in the RM's own input-embedding space), `GradientSwap`
  (HotFlip: first-order reward gain from the gradient), `WordNetSwap` (synonyms; only where
  WordNet data exists, see seam.textattack_env).
* `GreedyWIR`: TextAttack's greedy word swap with word-importance ranking, adding a gradient
  ranking that uses our wrapper (TextAttack's own assumes a word-level tokenizer).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..errors import SeamError
from ..textattack_env import ENGLISH_STOPWORDS, import_textattack, wordnet_available
from .adv_batch import char_edits, match_case, word_vocab

import_textattack()

import lru  # noqa: E402  (a TextAttack dependency: lru-dict)
import torch  # noqa: E402
from textattack import Attack  # noqa: E402
from textattack.constraints.pre_transformation import (  # noqa: E402
    MaxModificationRate, MaxWordIndexModification, RepeatModification, StopwordModification)
from textattack.goal_function_results import GoalFunctionResult  # noqa: E402
from textattack.goal_functions import GoalFunction  # noqa: E402
from textattack.models.wrappers import ModelWrapper  # noqa: E402
from textattack.search_methods import GreedyWordSwapWIR  # noqa: E402
from textattack.transformations import CompositeTransformation, WordSwap  # noqa: E402


# ============================================================================ victim


class RewardModelWrapper(ModelWrapper):
    """R(I∘response) for the current instruction ``prompt``; counts forward queries and backward passes."""

    def __init__(self, loaded, scorer):
        self.loaded = loaded
        self.model = loaded.model  # TextAttack looks for `.model`
        self.tokenizer = loaded.tokenizer
        self.scorer = scorer
        self.template = scorer.encoder.template
        self.prompt = ""
        self.queries = 0
        self.grad_calls = 0
        self._grad_cache: dict[str, tuple] = {}
        cfg = loaded.model.config
        self._max_len = int(getattr(cfg, "max_position_embeddings", 0) or getattr(self.tokenizer, "model_max_length", 2048))

    def set_prompt(self, prompt: str) -> None:
        self.prompt = prompt
        self._grad_cache.clear()

    def __call__(self, text_input_list, **kwargs):
        texts = list(text_input_list)
        self.queries += len(texts)
        return self.scorer.score([self.prompt] * len(texts), texts).astype(np.float32)

    @functools.cached_property
    def embeddings(self) -> torch.Tensor:
        return self.model.get_input_embeddings().weight.detach()

    @functools.cached_property
    def word_vocab(self) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        """Single-token words (" word" tokens) of the RM vocabulary: (words, token ids, unit embeddings)."""
        return word_vocab(self.tokenizer, self.embeddings)

    def word_embedding(self, word: str) -> torch.Tensor:
        ids = self.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        return self.embeddings[ids].float().mean(0)

    def gradients(self, response: str, words: list[str]) -> tuple[list[list[int]], np.ndarray, torch.Tensor]:
        """Per word of `response`: its token positions, the token ids, and dR/d(input embeddings) [T, d]."""
        key = response
        if key in self._grad_cache:
            return self._grad_cache[key]
        r = self.template.render(self.prompt, response)
        enc = self.tokenizer(r.text, return_offsets_mapping=True, add_special_tokens=True)
        ids = enc["input_ids"][: self._max_len]
        offsets = enc["offset_mapping"][: self._max_len]
        device = self.embeddings.device
        ids_t = torch.tensor([ids], device=device)
        captured = {}

        def leaf(module, args, output):  # make the embedding output a leaf we can differentiate to
            captured["emb"] = output.detach().requires_grad_(True)
            return captured["emb"]

        handle = self.model.get_input_embeddings().register_forward_hook(leaf)
        try:
            with torch.enable_grad():
                out = self.model(input_ids=ids_t, attention_mask=torch.ones_like(ids_t)).logits[0, self.loaded.reward_label]
                (grad,) = torch.autograd.grad(out, captured["emb"])
        finally:
            handle.remove()
        self.grad_calls += 1
        spans, pos = [], 0
        for w in words:  # words in order: locate each one's character span in the response
            j = response.find(w, pos)
            if j < 0:
                j = response.lower().find(w.lower(), pos)
            if j < 0:
                spans.append(None)
                continue
            spans.append((r.response_start + j, r.response_start + j + len(w)))
            pos = j + len(w)
        token_pos = []
        for span in spans:
            if span is None:
                token_pos.append([])
                continue
            a, b = span
            token_pos.append([t for t, (s, e) in enumerate(offsets) if s < b and e > a and e > s])
        result = (token_pos, np.asarray(ids), grad[0].float())
        if len(self._grad_cache) > 64:
            self._grad_cache.clear()
        self._grad_cache[key] = result
        return result

    def word_saliency(self, response: str, words: list[str]) -> np.ndarray:
        """L1 norm of the summed embedding gradient over each word's tokens (0 for words cut off)."""
        token_pos, _, grad = self.gradients(response, words)
        out = np.zeros(len(words))
        for i, pos in enumerate(token_pos):
            if pos:
                out[i] = float(grad[pos].sum(0).abs().sum())
        return out


# ============================================================================ goal


class RewardGoalResult(GoalFunctionResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs, goal_function_result_type="Reward")

    def get_text_color_input(self):
        return "red"

    def get_text_color_perturbed(self):
        return "green"

    def get_colored_output(self, color_method=None):
        return f"{float(self.raw_output):.4f}"


class RewardGoal(GoalFunction):
    """Reach R(I∘r*) >= threshold; the score (reward - threshold) is what the search maximises.

    TextAttack's constructor checks the (goal, model) pair against a table of classification and
    seq2seq goals and logs a warning for anything else, so the few attributes are set here.
    """

    def __init__(self, wrapper: RewardModelWrapper, query_budget: int, model_batch_size: int = 256):
        self.model = wrapper
        self.maximizable = False
        self.use_cache = True
        self.query_budget = query_budget
        self.batch_size = model_batch_size
        self._call_model_cache = lru.LRU(2 ** 16)
        self.allow_skip = False  # a start that already fools the RM is still perturbed
        self.threshold = 0.0
        self.seen: dict[str, tuple[float, object]] = {}

    def _process_model_outputs(self, inputs, outputs):
        return torch.as_tensor(outputs, dtype=torch.float32).reshape(-1)

    def _is_goal_complete(self, model_output, attacked_text):
        return float(model_output) >= self.threshold

    def _get_score(self, model_output, attacked_text):
        return float(model_output) - self.threshold

    def _goal_function_result_type(self):
        return RewardGoalResult

    def get_results(self, attacked_text_list, check_skip=False):
        results, over = super().get_results(attacked_text_list, check_skip=check_skip)
        for r in results:
            self.seen.setdefault(r.attacked_text.text, (float(r.raw_output), r.attacked_text))
        return results, over


# ============================================================================ transformations


class CharEdits(WordSwap):
    """DeepWordBug-style typos (Gao et al. 2018), deterministic: neighbour swaps, deletions,
    duplications and keyboard-neighbour substitutions inside the word (first letter kept);
    `max_candidates` of them, picked by an RNG seeded from (seed, word)."""

    def __init__(self, max_candidates: int = 8, seed: int = 0):
        super().__init__()
        self.max_candidates = max_candidates
        self.seed = seed

    def _get_replacement_words(self, word):
        return char_edits(word, self.max_candidates, self.seed)

    def extra_repr_keys(self):
        return ["max_candidates"]


class EmbeddingNeighbourSwap(WordSwap):
    """TextFooler-style swaps (Jin et al. 2019) with the RM's own input embeddings as the word space:
    the nearest single-token words by cosine to the word's (mean token) embedding."""

    def __init__(self, wrapper: RewardModelWrapper, max_candidates: int = 8, min_cos: float = 0.0):
        super().__init__()
        self.wrapper = wrapper
        self.max_candidates = max_candidates
        self.min_cos = min_cos
        self._cache: dict[str, list[str]] = {}

    def _get_replacement_words(self, word):
        if not word.isalpha() or len(word) < 2:
            return []
        if word in self._cache:
            return self._cache[word]
        words, _, unit = self.wrapper.word_vocab
        if not words:
            return []
        v = self.wrapper.word_embedding(word)
        v = v / v.norm().clamp_min(1e-8)
        cos = unit @ v
        top = torch.topk(cos, min(len(words), self.max_candidates + 4))
        out = []
        for c, i in zip(top.values.tolist(), top.indices.tolist()):
            w = words[i]
            if w.lower() != word.lower() and c >= self.min_cos:
                out.append(match_case(word, w))
            if len(out) >= self.max_candidates:
                break
        self._cache[word] = out
        return out

    def extra_repr_keys(self):
        return ["max_candidates", "min_cos"]


class GradientSwap(WordSwap):
    """HotFlip (Ebrahimi et al. 2018) at word level: for the word's first token t with gradient g,
    rank single-token words v by the first-order reward gain (e_v - e_t)·g and keep the best
    positive ones. One backward pass per distinct current text (cached)."""

    def __init__(self, wrapper: RewardModelWrapper, max_candidates: int = 8):
        super().__init__()
        self.wrapper = wrapper
        self.max_candidates = max_candidates

    @property
    def deterministic(self):
        return True

    def _get_transformations(self, current_text, indices_to_modify):
        words_vocab, vocab_ids, _ = self.wrapper.word_vocab
        if not words_vocab:
            return []
        words = current_text.words
        token_pos, ids, grad = self.wrapper.gradients(current_text.text, words)
        emb = self.wrapper.embeddings
        vocab_emb = emb.index_select(0, vocab_ids).float()  # [V, d]
        out = []
        for i in sorted(indices_to_modify):
            pos = token_pos[i] if i < len(token_pos) else []
            if not pos:
                continue
            t = pos[0]
            g = grad[t]  # [d]
            gain = vocab_emb @ g - float(emb[int(ids[t])].float() @ g)  # [V]
            top = torch.topk(gain, min(len(words_vocab), self.max_candidates + 4))
            n = 0
            for value, j in zip(top.values.tolist(), top.indices.tolist()):
                w = words_vocab[j]
                if value <= 0 or w.lower() == words[i].lower():
                    continue
                out.append(current_text.replace_word_at_index(i, match_case(words[i], w)))
                n += 1
                if n >= self.max_candidates:
                    break
        return out

    def extra_repr_keys(self):
        return ["max_candidates"]


class WordNetSwap(WordSwap):
    """PWWS-style synonym swaps (Ren et al. 2019) from NLTK WordNet, read from local data only
    (TextAttack's WordSwapWordNet calls nltk.download on construction)."""

    def __init__(self, max_candidates: int = 8):
        super().__init__()
        if not wordnet_available():
            raise SeamError("--recipe wordnet needs WordNet data, which is not installed; install Debian's "
                            "`apt-get install wordnet-base wordnet-sense-index` and run `python -m seam.textattack_env`, "
                            "or pick another recipe (greedy, char, embedding, hotflip)")
        from nltk.corpus import wordnet

        self.wordnet = wordnet
        self.max_candidates = max_candidates

    def _get_replacement_words(self, word):
        out = []
        for syn in self.wordnet.synsets(word):
            for lemma in syn.lemmas():
                name = lemma.name()
                if "_" in name or not name.isalpha() or name.lower() == word.lower() or name in out:
                    continue
                out.append(match_case(word, name))
                if len(out) >= self.max_candidates:
                    return out
        return out


# ============================================================================ search


class GreedyWIR(GreedyWordSwapWIR):
    """TextAttack's greedy swap with word-importance ranking; ``wir_method="gradient"`` uses the RM
    wrapper's per-word gradient saliency (one backward pass, no RM query)."""

    def _get_index_order(self, initial_text, max_len=-1):
        if self.wir_method != "gradient":
            return super()._get_index_order(initial_text, max_len)
        _, indices = self.get_indices_to_order(initial_text)
        indices = sorted(indices)
        if self.truncate_words_to is not None:
            indices = indices[: self.truncate_words_to]
        saliency = self.goal_function.model.word_saliency(initial_text.text, initial_text.words)
        scores = np.array([saliency[i] for i in indices]) if indices else np.zeros(0)
        order = np.array(indices, dtype=np.int64)[np.argsort(-scores, kind="stable")]
        return order, False


# ============================================================================ recipes


@dataclass
class Recipe:
    transformation: object
    wir: str  # word-importance ranking: delete (black-box) or gradient (white-box)


def _greedy(w, cfg):
    """Default: typos + RM-embedding neighbours + HotFlip swaps, words ranked by gradient saliency."""
    return Recipe(CompositeTransformation([CharEdits(cfg.max_candidates, cfg.seed),
                                           EmbeddingNeighbourSwap(w, cfg.max_candidates),
                                           GradientSwap(w, cfg.max_candidates)]), "gradient")


def _char(w, cfg):
    """DeepWordBug-like, black-box: typos only, words ranked by leave-one-out deletion."""
    return Recipe(CharEdits(cfg.max_candidates, cfg.seed), "delete")


def _embedding(w, cfg):
    """TextFooler-like, black-box: RM-embedding neighbours, words ranked by leave-one-out deletion."""
    return Recipe(EmbeddingNeighbourSwap(w, cfg.max_candidates), "delete")


def _hotflip(w, cfg):
    """HotFlip-like, white-box: gradient swaps, words ranked by gradient saliency."""
    return Recipe(GradientSwap(w, cfg.max_candidates), "gradient")


def _wordnet(w, cfg):
    """PWWS-like: WordNet synonyms (needs local WordNet data), leave-one-out deletion ranking."""
    return Recipe(WordNetSwap(cfg.max_candidates), "delete")


RECIPES = {"greedy": _greedy, "char": _char, "embedding": _embedding, "hotflip": _hotflip, "wordnet": _wordnet}


@dataclass
class RunResult:
    pool: list  # (text, reward, words changed) for every perturbed text the search scored
    success: bool
    queries: int  # RM forward queries during this attack
    grad_calls: int


class AttackRunner:
    """One TextAttack `Attack` (goal, constraints, transformation, search) reused for every instruction."""

    def __init__(self, loaded, scorer, cfg):
        self.wrapper = RewardModelWrapper(loaded, scorer)
        self.goal = RewardGoal(self.wrapper, cfg.query_budget)
        recipe = RECIPES[cfg.recipe](self.wrapper, cfg)
        constraints = [RepeatModification(), StopwordModification(stopwords=ENGLISH_STOPWORDS),
                       MaxWordIndexModification(cfg.max_words), MaxModificationRate(float(cfg.max_modify_rate), 1)]
        search = GreedyWIR(wir_method=recipe.wir, truncate_words_to=cfg.max_words)
        self.attack = Attack(self.goal, constraints, recipe.transformation, search)

    def run(self, prompt: str, start: str, threshold: float) -> RunResult:
        w, g = self.wrapper, self.goal
        w.set_prompt(prompt)
        g.threshold = threshold
        g.seen = {}
        self.attack.clear_cache()
        q0, b0 = w.queries, w.grad_calls
        self.attack.attack(start, 0)
        pool = [(text, reward, len(at.attack_attrs.get("modified_indices", ())))
                for text, (reward, at) in g.seen.items() if text != start]
        success = any(r >= threshold for _, r, _ in pool)
        return RunResult(pool, success, w.queries - q0, w.grad_calls - b0)
