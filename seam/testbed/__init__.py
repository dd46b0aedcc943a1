"""The offline demo world: instruction-following tasks with one correct answer each.

Seven categories of short tasks (arithmetic, comparison, unit conversion, counting, spelling,
sorting, facts from a small table), golden responses in natural sentences, typed corruptions, a
programmatic gold judge, and RM preference pairs with a configurable coverage of corruption kinds
(so a trained RM has known blind spots). Pure Python + numpy; deterministic by seed.

    >>> from seam.testbed import WorldConfig, generate_tasks, judge
    >>> tasks = generate_tasks(WorldConfig(seed=0, n_tasks=70))
    >>> all(judge(t, t.golden) == 1.0 for t in tasks)
    True

See docs/testbed.md.
"""

from .categories import CATEGORIES
from .corruptions import CORRUPTIONS, FORM_KINDS, corrupt
from .coverage import DEFAULT_COVERAGE_SPEC, Coverage, negatives_rows, preference_pairs
from .gold_judge import judge, judge_explain
from .task import Task
from .world import (SPLITS, WorldConfig, generate_tasks, instructions_rows, sft_rows, split, task_from_row,
                    task_index)

__all__ = [
    "CATEGORIES", "CORRUPTIONS", "DEFAULT_COVERAGE_SPEC", "FORM_KINDS", "SPLITS", "Coverage", "Task",
    "WorldConfig", "corrupt", "generate_tasks", "instructions_rows", "judge", "judge_explain",
    "negatives_rows", "preference_pairs", "sft_rows", "split", "task_from_row", "task_index",
]

# World v2 (docs/world-v2.md): skills with hidden RM-blind / PM-prone assignments, planting and its check.
# Its row builders keep their names under seam.testbed.v2 (sft_rows, instructions_rows differ from v1's).
from .v2 import (SKILLS, World, WorldV2Config, build_world, check_planting, planting_report, probe_rows,  # noqa: E402
                 rm_pairs)

__all__ += ["SKILLS", "World", "WorldV2Config", "build_world", "check_planting", "planting_report", "probe_rows",
            "rm_pairs"]
