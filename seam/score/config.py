"""`ScoreConfig`: the settings of one scoring run, light to import (no torch), so the dashboard and
the job queue can build and check it before any model is loaded."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import SeamError
from ..models.templates import check_template
from ..settings import Settings, setting
from .formula import AGGREGATES, WEIGHTINGS

SIDE_BY_SIDE = ("auto", "on", "off")
DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class ScoreConfig(Settings):
    """Settings of one scoring run: `seam score` flags, the Score page's form and the score job's
    stored settings are all built from these fields (`from_dict` checks them; `to_dict` stores them)."""

    template: str = setting("stackllama", "stackllama | chat | a format string with {prompt} and {response}")
    weighting: str = setting("paper", "paper: ell x eps (the paper's Eq. 2) | prob: -exp(ell) x eps (Definition 1)")
    aggregate: str = setting("sum", "sum | mean of the per-negative terms of one (instruction, variant)")
    max_prompt_tokens: int | None = setting(None, "keep the first N prompt tokens (counted as truncation)", metavar="N")
    max_response_tokens: int | None = setting(None, "keep the first N response tokens (counted as truncation)",
                                              metavar="N")
    batch_tokens: int = setting(16384, "padded tokens per forward batch", metavar="N")
    chunk_instructions: int = setting(256, "instructions per chunk: bounded memory, and the unit of commit and resume",
                                      metavar="N")
    variants: tuple[str, ...] | None = setting(None, "only these variants (default: all in the negatives)",
                                               metavar="NAME")
    side_by_side: str = setting("auto", "auto | on | off: the PM and RM at once, each on half the CPU threads "
                                        "(auto: small models, hidden size < 512, both on the CPU)")
    device: str = setting("auto", "auto | cpu | cuda | cuda:N: where the models run")
    dtype: str = setting("auto", "auto | float32 | bfloat16 | float16 (auto: float32 on CPU, bfloat16 on a GPU)")

    def validate(self) -> None:
        check_template(self.template)
        if self.weighting not in WEIGHTINGS:
            raise SeamError(f"--weighting {self.weighting!r}: choose one of {', '.join(WEIGHTINGS)}")
        if self.aggregate not in AGGREGATES:
            raise SeamError(f"--aggregate {self.aggregate!r}: choose one of {', '.join(AGGREGATES)}")
        for flag, v in (("--max-prompt-tokens", self.max_prompt_tokens), ("--max-response-tokens", self.max_response_tokens)):
            if v is not None and v < 1:
                raise SeamError(f"{flag} {v}: must be a positive number of tokens")
        if self.batch_tokens < 64:
            raise SeamError(f"--batch-tokens {self.batch_tokens}: too small; use at least 64 (default 16384)")
        if self.chunk_instructions < 1:
            raise SeamError(f"--chunk-instructions {self.chunk_instructions}: must be >= 1")
        if self.side_by_side not in SIDE_BY_SIDE:
            raise SeamError(f"--side-by-side {self.side_by_side!r}: choose one of {', '.join(SIDE_BY_SIDE)}")
        if not DEVICE.match(str(self.device)):
            raise SeamError(f"--device {self.device!r}: use auto, cpu, cuda or cuda:N")
        if self.dtype not in DTYPES:
            raise SeamError(f"--dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
