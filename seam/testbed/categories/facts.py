"""Facts from the small table in `tables.FACT_RELATIONS`."""

from __future__ import annotations

from ..tables import FACT_RELATIONS
from ..text import contains_phrase
from .base import Category, Reading, pick, _q


# ---------------------------------------------------------------- facts

class Facts(Category):
    name = "facts"

    def stream(self, rng, cfg):
        combos = [(r, i) for r, spec in FACT_RELATIONS.items() for i in range(len(spec["rows"]))]
        for j in rng.permutation(len(combos)):
            r, i = combos[int(j)]
            subject = FACT_RELATIONS[r]["rows"][i][0]
            yield {"relation": r, "subject": subject, "q": int(rng.integers(2))}

    def key(self, p):
        return f"{p['relation']}:{p['subject']}"

    @staticmethod
    def _spec(p):
        return FACT_RELATIONS[p["relation"]]

    def _values(self, p) -> list[str]:
        spec = self._spec(p)
        return list(spec.get("order") or dict.fromkeys(v for _, v in spec["rows"]))

    def build(self, p):
        spec = self._spec(p)
        ans = dict(spec["rows"])[p["subject"]]
        s = p["subject"]
        q = _q(p, spec["questions"]).format(s=s, S=s[:1].upper() + s[1:])
        return q, ans, self.render(p, ans)

    def render(self, p, answer_text):
        s = p["subject"]
        article = "an" if answer_text[:1].lower() in "aeiou" else "a"
        return self._spec(p)["golden"].format(s=s, S=s[:1].upper() + s[1:], v=answer_text, a=article)

    def read(self, task, response):
        spec = self._spec(task.params)
        cs = spec["case_sensitive"]
        # Presence of the answer: case-insensitive except for chemical symbols ("Co" vs "CO").
        answer_cs = task.params["relation"] == "element_symbol"
        others = [v for v in self._values(task.params)
                  if v != task.answer and not contains_phrase(task.prompt, v, False) and contains_phrase(response, v, cs)]
        if not contains_phrase(response, task.answer, answer_cs):
            return Reading("wrong", tuple(others)) if others else Reading("none")
        return Reading("wrong" if others else "correct", tuple([task.answer] + others))

    def _candidates(self, task) -> list[str]:
        return [v for v in self._values(task.params) if v != task.answer and not contains_phrase(task.prompt, v, False)]

    def near_miss(self, task, rng):
        values = self._values(task.params)
        i = values.index(task.answer)
        cands = set(self._candidates(task))
        for dist in range(1, len(values)):
            near = [values[j % len(values)] for j in (i - dist, i + dist)]
            near = [v for v in dict.fromkeys(near) if v in cands]
            if near:
                return str(pick(rng, near))
        raise AssertionError(f"no near miss for {task.id}")

    def wrong_value(self, task, rng):
        values = self._values(task.params)
        i = values.index(task.answer)
        cands = self._candidates(task)
        far = [v for v in cands if min((values.index(v) - i) % len(values), (i - values.index(v)) % len(values)) > 1]
        return str(pick(rng, far or cands))
