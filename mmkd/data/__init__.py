"""Tasks: the offline built-in CLDR suite (and, behind the same interface, hub/local datasets)."""

from mmkd.data import cldr as _cldr  # noqa: F401  (registers builtin/cldr)
from mmkd.data.base import SPLITS, TASKS, Example, Task, format_examples, get_task

__all__ = ["SPLITS", "TASKS", "Example", "Task", "format_examples", "get_task"]
