"""The task registry front door: unknown tasks and options are user errors that name them."""

import pytest

from mmkd.data import TASKS, get_task
from mmkd.errors import UserInputError


def test_unknown_task_suggests_the_close_name():
    with pytest.raises(UserInputError, match=r"'builtin/cldx' \(did you mean 'builtin/cldr'\?\)"):
        get_task("builtin/cldx")


def test_a_factory_taking_any_options_gets_them_unchecked(monkeypatch):
    seen = {}

    def factory(**options):
        seen.update(options)
        return "task"

    monkeypatch.setitem(TASKS._items, "test/any", factory)
    assert get_task("test/any", anything=1) == "task" and seen == {"anything": 1}
