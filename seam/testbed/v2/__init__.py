"""World v2 of the demo: skills with hidden RM-blind and PM-prone assignments, planted and checked.

See docs/world-v2.md. The tiny-RM measurement (`seam.testbed.v2.measure`) is not imported here:
it pulls in the trainers.
"""

from .flaws import GROUPS, KINDS, FlawNotApplicable, applicable_kinds, flaw
from .planting import check_planting, planting_report, probe_rows, report_markdown, rm_pairs, sft_rows, wilson
from .skills import (SKILLS, TWINS, World, WorldV2Config, assign, build_world, instructions_rows, skill_groups,
                     skill_tasks)

__all__ = [
    "GROUPS", "KINDS", "SKILLS", "FlawNotApplicable", "World", "WorldV2Config", "applicable_kinds", "assign",
    "build_world", "check_planting", "flaw", "instructions_rows", "planting_report", "probe_rows",
    "report_markdown", "rm_pairs", "sft_rows", "skill_groups", "skill_tasks", "TWINS", "wilson",
]
