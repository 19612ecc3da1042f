"""Tasks: the offline built-in CLDR suite (and, behind the same interface, hub/local datasets)."""

from mmkd.data import cldr as _cldr  # noqa: F401  (registers builtin/cldr)
from mmkd.data import xtreme_r as _xtreme_r  # noqa: F401  (registers xtreme_r/*)
from mmkd.data.base import SPLITS, TASKS, Example, Task, format_examples, get_task

__all__ = ["SPLITS", "TASKS", "Example", "Task", "format_examples", "get_task"]
