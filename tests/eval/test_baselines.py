"""The trivial baselines a sweep is shown next to, scored like a trial's outputs."""

import pytest

from mmkd.data import get_task
from mmkd.eval.baselines import baseline_table, dev_sets, read_baselines, trivial_outputs, write_baselines
from mmkd.eval.langid import get_langid


@pytest.fixture(scope="module")
def task():
    return get_task("builtin/cldr", n_dev=12, languages=["ru", "sw", "te"])


def test_copy_input_and_english_answer_outputs(task):
    dev = dev_sets(task)
    outputs = trivial_outputs(task, dev)
    assert outputs["copy_input"]["sw"] == [e.source for e in dev["sw"]]
    english = {e.id: e.target for e in dev["en"]}
    assert outputs["english_answer"]["te"] == [english[e.id] for e in dev["te"]]
    # Items that are not parallel have no English answer to give.
    dev["te"] = [e.__class__(e.id + "x", e.lang, e.source, e.target, e.spans) for e in dev["te"]]
    assert "english_answer" not in trivial_outputs(task, dev)


def test_the_table_scores_each_baseline_and_lists_teachers_after(task, tmp_path):
    teacher = {"eval/score": 40.0, "eval/zero_shot/wlr": 0.2}
    table = baseline_table(task, dev_sets(task), get_langid("fasttext"), 0.3, {"l": teacher})
    assert table["baseline"].tolist() == ["copy_input", "english_answer", "teacher:l"]
    copy, english = table.iloc[0], table.iloc[1]
    # The input is in the right language (lid.176 reads Russian and Telugu past forms as such; not
    # Swahili's, which is why the task's targets are the future forms), the English answer is not.
    assert copy["eval/ru/wlr"] == copy["eval/te/wlr"] == 0
    assert english["eval/zero_shot/wlr"] == 1
    assert english["eval/en/chrf"] == pytest.approx(100)
    assert copy["eval/score"] > english["eval/score"] > 0
    assert table.iloc[2]["eval/score"] == 40.0
    assert set(table["low_resource_langs"]) == {"sw,te"}
    write_baselines(table, tmp_path)
    back = read_baselines(tmp_path)
    assert back is not None and back.columns[0] == "baseline"
    assert back["eval/score"].tolist() == pytest.approx(table["eval/score"].tolist())
    assert read_baselines(tmp_path / "none") is None
