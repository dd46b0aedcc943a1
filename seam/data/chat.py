"""Chat data kept as messages: the instructions contract's conversational rows.

A conversational instruction keeps its conversation (system prompt and earlier turns included) as
a list of ``{"role", "content"}`` messages in ``meta["messages"]``; ``prompt`` holds a readable
rendering of it (a lone user turn is its content; several turns are "System: ..." / "User: ..." /
"Assistant: ..." blocks), so every part that reads text (embeddings, LLM negatives, the store's
text column, the ``stackllama`` template) works unchanged, and the store needs no new column.

`load_instructions` (and `with_messages` for frames read from the store) turn such a prompt into a
`ChatPrompt`: a ``str`` equal to the readable rendering that also carries ``.messages``. The
``chat`` template renders ``.messages`` plus the response as the last assistant turn through the
tokenizer's chat template; plain strings render as one user turn. See docs/data.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

MESSAGES_KEY = "messages"  # meta key holding the prompt's conversation


class ChatPrompt(str):
    """A prompt's readable text that also carries its chat `messages` (the conversation before the
    response). Compares and hashes as the text; a prefix slice (``p[:n]``, used when prompts are cut
    to a token budget) keeps the messages that lie in the first n characters of the rendering."""

    messages: list[dict]

    def __new__(cls, text: str, messages: list[dict]) -> ChatPrompt:
        obj = super().__new__(cls, text)
        obj.messages = messages
        return obj

    def __reduce__(self):
        return (ChatPrompt, (str(self), self.messages))

    def __getitem__(self, key):
        if isinstance(key, slice) and key.step in (None, 1) and key.start in (None, 0):
            return self.cut(slice(key.start, key.stop).indices(len(self))[1])
        return str.__getitem__(self, key)

    def cut(self, n: int) -> ChatPrompt:
        """The first `n` characters of the text, with the messages cut at the same point of their
        readable rendering (later messages dropped, the message at the cut shortened)."""
        kept = []
        for message, start, text in _layout(self.messages):
            if start is None:  # no text (e.g. an empty system message): kept where it stands
                kept.append(message)
                continue
            if start >= n:
                break
            if start + len(text) <= n:
                kept.append(message)
            else:
                kept.append({**message, "content": text[: n - start]})
                break
        return ChatPrompt(str.__getitem__(self, slice(0, n)), kept)


# ------------------------------------------------------------------------------------- messages


def message_text(message: Any) -> str:
    """A message's text (multimodal content: its text parts joined by newlines), stripped."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, (list, tuple)):  # multimodal parts: keep the text ones
        parts = [p for p in content if isinstance(p, dict) and p.get("type", "text") == "text"]
        content = "\n".join(str(p.get("text", "")) for p in parts)
    return content.strip() if isinstance(content, str) else ""


def _plain(value: Any) -> Any:
    """Parquet / HF rows hold lists as numpy arrays and structs with every key (absent ones None):
    back to lists and dicts without the None-valued keys."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def as_messages(value: Any) -> list[dict] | None:
    """`value` as a list of chat messages ({role, content, ...} dicts), or None when it is not one.
    Accepts lists, tuples and numpy arrays (Parquet / HF rows); drops None-valued keys."""
    if isinstance(value, (str, bytes, dict)) or value is None:
        return None
    if not isinstance(value, (list, tuple)) and not hasattr(value, "tolist"):
        return None
    items = _plain(value)
    if not isinstance(items, list) or not items:
        return None
    for m in items:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not m["role"].strip():
            return None
        if not isinstance(m.get("content", ""), (str, list)):
            return None
    return items


def is_messages(value: Any) -> bool:
    return as_messages(value) is not None


def _layout(messages: Iterable[dict]) -> list[tuple[dict, int | None, str]]:
    """(message, start of its text in `render_messages`, text) for every message; start None for
    messages with no text (they are left out of the rendering)."""
    turns = [(m, str(m.get("role", "user")), message_text(m)) for m in messages]
    shown = [t for t in turns if t[2]]
    lone = len(shown) == 1 and shown[0][1] == "user"
    out, pos = [], 0
    for m, role, text in turns:
        if not text:
            out.append((m, None, text))
            continue
        if pos:
            pos += 2  # the blank line between turns
        if not lone:
            pos += len(role.capitalize()) + 2  # "User: "
        out.append((m, pos, text))
        pos += len(text)
    return out


def render_messages(messages: Iterable[dict]) -> str:
    """Readable prompt text from chat messages: a lone user turn is its content; several turns
    become 'System: ...' / 'User: ...' / 'Assistant: ...' blocks separated by blank lines."""
    turns = [(str(m.get("role", "user")), message_text(m)) for m in messages if isinstance(m, dict)]
    turns = [(role, text) for role, text in turns if text]
    if len(turns) == 1 and turns[0][0] == "user":
        return turns[0][1]
    return "\n\n".join(f"{role.capitalize()}: {text}" for role, text in turns)


def last_assistant(messages: Any) -> str | None:
    """The content of the last message when it is an assistant turn (exact, not stripped), else None."""
    msgs = as_messages(messages)
    if not msgs or msgs[-1]["role"] != "assistant":
        return None
    content = msgs[-1].get("content", "")
    return content if isinstance(content, str) else message_text(msgs[-1])


# ------------------------------------------------------------------------------------- frames


def prompt_messages(prompt: Any, meta: Any) -> list[dict] | None:
    """The conversation of an instruction row: its ChatPrompt's messages, else meta["messages"]."""
    messages = getattr(prompt, "messages", None)
    if messages is None and isinstance(meta, dict):
        messages = as_messages(meta.get(MESSAGES_KEY))
    return messages


def chat_prompt(prompt: Any, meta: Any) -> Any:
    """`prompt` as a ChatPrompt when the row holds messages (meta["messages"]), else unchanged."""
    if not isinstance(prompt, str) or isinstance(prompt, ChatPrompt):
        return prompt
    messages = prompt_messages(prompt, meta)
    return ChatPrompt(prompt, messages) if messages else prompt


def with_messages(df: pd.DataFrame) -> pd.DataFrame:
    """An instructions frame whose chat rows' prompts are ChatPrompts (for frames that did not come
    from `load_instructions`, e.g. the store's). Returns `df` itself when there is nothing to do."""
    if "prompt" not in df.columns or "meta" not in df.columns:
        return df
    prompts = [chat_prompt(p, m) for p, m in zip(df["prompt"].tolist(), df["meta"].tolist())]
    if not any(isinstance(p, ChatPrompt) for p in prompts):
        return df
    out = df.copy()
    out["prompt"] = pd.Series(prompts, dtype=object, index=df.index)
    return out


def has_messages(df: pd.DataFrame) -> bool:
    """Whether any row of an instructions frame is conversational."""
    if "prompt" not in df.columns:
        return False
    metas = df["meta"].tolist() if "meta" in df.columns else [None] * len(df)
    return any(prompt_messages(p, m) for p, m in zip(df["prompt"].tolist(), metas))


def conversation(prompt: Any, meta: Any = None) -> list[dict]:
    """The messages to render for a row: its conversation, or one user turn holding the prompt."""
    return prompt_messages(prompt, meta) or [{"role": "user", "content": str(prompt)}]


def assistant_turn(text: Any) -> list[dict] | None:
    """A response as TRL's conversational completion: one assistant message (None stays None)."""
    if text is None or (isinstance(text, float) and text != text):
        return None
    return [{"role": "assistant", "content": str(text)}]
