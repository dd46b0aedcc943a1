"""Render (prompt, response) into one text and know where the response sits in it.

Templates (DESIGN.md section 2):
* ``stackllama`` (default): ``"Question: {prompt}\\n\\nAnswer: {response}"``
* ``chat``: the tokenizer's chat template over the whole conversation (system prompt included, from
  a prompt carrying ``.messages``; a plain prompt is one user turn), the response as the last
  assistant turn
* any custom format string containing ``{prompt}`` and ``{response}`` exactly once each
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import SeamError

STACKLLAMA = "Question: {prompt}\n\nAnswer: {response}"
_FIELD = re.compile(r"(\{prompt\}|\{response\})")


@dataclass(frozen=True)
class Rendered:
    text: str
    response_start: int  # character span of the response inside `text`
    response_end: int


class Template:
    """Turns (prompt, response) into text + the response's character span."""

    name: str

    def render(self, prompt: str, response: str) -> Rendered:  # pragma: no cover - interface
        raise NotImplementedError


class FormatTemplate(Template):
    def __init__(self, fmt: str, name: str | None = None):
        parts = _FIELD.split(fmt)
        if parts.count("{prompt}") != 1 or parts.count("{response}") != 1:
            raise SeamError(
                f"--template {fmt!r}: a custom template must contain {{prompt}} and {{response}} exactly once each "
                "(or use stackllama / chat)"
            )
        self.fmt = fmt
        self.name = name or fmt
        self._parts = parts

    def render(self, prompt: str, response: str) -> Rendered:
        out, start, end, pos = [], 0, 0, 0
        for part in self._parts:
            if part == "{prompt}":
                piece = prompt
            elif part == "{response}":
                start, end = pos, pos + len(response)
                piece = response
            else:
                piece = part
            out.append(piece)
            pos += len(piece)
        return Rendered("".join(out), start, end)


class ChatTemplate(Template):
    """The tokenizer's chat template over the whole conversation, the response as the last
    assistant turn. A prompt that carries chat messages (``prompt.messages``: a
    `seam.data.chat.ChatPrompt`, system prompt and earlier turns included) renders them all; a
    plain string renders as one user turn. The response's span is located after the rendering of
    the conversation alone with its generation prompt, so text the template adds around the reply
    (end-of-turn markers, empty thinking blocks) is never counted as response. When the tokenizer
    adds a BOS token itself and the template also writes it, the template's copy is left out so the
    sequence holds one BOS."""

    name = "chat"

    def __init__(self, tokenizer):
        if not getattr(tokenizer, "chat_template", None):
            raise SeamError("--template chat: this tokenizer has no chat template; use --template stackllama or a format string")
        self.tokenizer = tokenizer
        bos, bos_id = getattr(tokenizer, "bos_token", None), getattr(tokenizer, "bos_token_id", None)
        adds_bos = False
        if bos and bos_id is not None:
            ids = tokenizer("x", add_special_tokens=True)["input_ids"]
            adds_bos = bool(ids) and ids[0] == bos_id
        self._strip = bos if adds_bos else ""
        self._heads: dict[int, tuple[str, str]] = {}  # id(prompt) -> (prompt, its rendering with the generation prompt)

    def messages(self, prompt: str) -> list[dict]:
        messages = getattr(prompt, "messages", None)
        return list(messages) if messages else [{"role": "user", "content": str(prompt)}]

    def _apply(self, messages: list[dict], generation_prompt: bool) -> str:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
        if self._strip and text.startswith(self._strip):
            text = text[len(self._strip):]
        return text

    def render(self, prompt: str, response: str) -> Rendered:
        convo = self.messages(prompt)
        text = self._apply(convo + [{"role": "assistant", "content": response}], False)
        cached = self._heads.get(id(prompt))
        if cached is not None and cached[0] is prompt:
            head = cached[1]
        else:
            head = self._apply(convo, True)
            if len(self._heads) >= 4096:
                self._heads.clear()
            self._heads[id(prompt)] = (prompt, head)
        after = len(head) if text.startswith(head) else None
        if not response:
            return Rendered(text, after or len(text), after or len(text))
        for piece in (response, response.strip()):  # the second for templates that trim message content
            start = (text.find(piece, after) if after is not None else text.rfind(piece)) if piece else -1
            if start >= 0:
                return Rendered(text, start, start + len(piece))
        raise SeamError("--template chat: the chat template changes the response text, so its tokens cannot be located; "
                        "use stackllama or a format string")


def check_template(spec: str) -> None:
    """Raise the one-line error `get_template` would, without needing a tokenizer."""
    if spec not in ("stackllama", "chat"):
        if "{" not in spec:
            get_template(spec)  # raises: unknown name
        FormatTemplate(spec)


def get_template(spec: str, tokenizer=None) -> Template:
    """Resolve a --template value: a registered name or a custom format string."""
    if spec == "stackllama":
        return FormatTemplate(STACKLLAMA, name="stackllama")
    if spec == "chat":
        if tokenizer is None:
            raise SeamError("--template chat needs the model's tokenizer")
        return ChatTemplate(tokenizer)
    if "{" in spec:
        return FormatTemplate(spec)
    raise SeamError(f"--template {spec!r}: unknown template; use stackllama, chat, or a format string with {{prompt}} and {{response}}")
