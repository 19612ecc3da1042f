"""Group names say what they hold (a task without Joshi class 0-2 languages), and the WLR stopping rule
refuses a group the task does not report."""

import pytest

from mmkd import config
from mmkd.data import get_task
from mmkd.data.xtreme_r import low_resource_group_name
from mmkd.errors import UserInputError
from mmkd.eval.evaluate import evaluate_outputs
from mmkd.eval.langid import get_langid
from mmkd.names import per_language


def test_a_task_without_low_resource_languages_names_its_lowest_class():
    assert low_resource_group_name(["en", "el", "th", "de"]) == "lowest_class3"  # XQuAD
    assert low_resource_group_name(["en", "hi", "vi", "de"]) == "lowest_class4"  # MLQA
    assert low_resource_group_name(["en", "sw", "te", "ru"]) == "low_resource"  # TyDiQA
    assert get_task("xtreme_r/xquad").low_resource_name == "lowest_class3"
    assert get_task("builtin/cldr", n_train=8, n_dev=2).low_resource_name == "low_resource"


def test_evaluation_reports_the_group_under_its_name():
    refs = {"en": ["in 3 days"], "el": ["σε 3 ημέρες"], "th": ["ในอีก 3 วัน"]}
    ids = {lang: ["0"] for lang in refs}
    ev = evaluate_outputs(
        refs,
        refs,
        ids,
        source_lang="en",
        low_resource=["el", "th"],
        langid=get_langid(),
        low_name="lowest_class3",
    )
    assert "eval/lowest_class3/chrf" in ev.metrics and "eval/lowest_class3/wlr" in ev.metrics
    assert not [k for k in ev.metrics if k.startswith("eval/low_resource/")]
    assert not per_language("eval/lowest_class3/chrf") and per_language("eval/el/chrf")


def test_wlr_stopping_refuses_a_group_the_task_does_not_have():
    def load(metric: str) -> config.SweepConfig:
        task = {"name": "xtreme_r/xquad", "languages": ["el", "th", "de"]}
        return config.from_dict({"task": task, "stop": {"wlr": {"metric": metric}}})

    with pytest.raises(UserInputError) as err:
        load("eval/low_resource/wlr")
    message = str(err.value)
    assert "stop.wlr.metric: task xtreme_r/xquad reports no low_resource group" in message
    assert "eval/lowest_class3/wlr" in message and "\n" not in message
    sweep = load("eval/lowest_class3/wlr")
    assert sweep.stop.wlr is not None and sweep.stop.wlr.metric == "eval/lowest_class3/wlr"
    with pytest.raises(UserInputError, match=r"stop\.wlr\.metric: not a WLR the trials report"):
        config.load("quickstart", ["stop.wlr.metric=eval/xx/wlr"])
