"""Render (prompt, response) into one text and know where the response sits in it.

Templates (DESIGN.md section 2):
* ``stackllama`` (default): ``"Question: {prompt}\\n\\nAnswer: {response}"``
* ``chat``: the tokenizer's chat template with one user and one assistant turn
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
    name = "chat"

    def __init__(self, tokenizer):
        if not getattr(tokenizer, "chat_template", None):
            raise SeamError("--template chat: this tokenizer has no chat template; use --template stackllama or a format string")
        self.tokenizer = tokenizer

    def render(self, prompt: str, response: str) -> Rendered:
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False)
        start = text.rfind(response) if response else len(text)
        if start < 0:
            raise SeamError("--template chat: the chat template changes the response text, so its tokens cannot be located; use stackllama or a format string")
        return Rendered(text, start, start + len(response))


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
