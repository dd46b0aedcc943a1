"""The `Task` record: one instruction of the demo world with its single correct answer."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Task:
    """One generated instruction.

    `answer` is the canonical value as text ("42", "Paris", "3, 7, 19"); `golden` is a natural
    sentence that states it; `params` (JSON-native values only) is everything the category needs
    to rebuild, judge and corrupt the task, so a task survives a round trip through a JSONL file.
    """

    id: str
    category: str
    prompt: str
    answer: str
    golden: str
    params: dict = field(default_factory=dict)
