"""Sweep config: every shipped YAML loads; each kind of mistake is one line naming key and value."""

import inspect

import pytest

from mmkd import config
from mmkd.distill.losses import structure_loss, word_align_loss
from mmkd.errors import UserInputError

SWEEPS = sorted(config.shipped_sweeps())


def test_the_shipped_sweeps_are_found():
    assert {"quickstart", "toy_scaling"} <= set(SWEEPS)


@pytest.mark.parametrize("name", SWEEPS)
def test_every_shipped_sweep_loads(name):
    sweep = config.load(name)
    assert sweep.name == name
    assert sweep.pairs()


def test_a_shipped_sweep_is_found_by_name_and_overrides_apply():
    sweep = config.load(
        "quickstart",
        ["train.max_steps=50", "train.eval_every=25", "search.adapter_rank=[0, 4]", "task.languages=[te]"],
    )
    assert sweep.train.max_steps == 50
    assert sweep.search.adapter_rank == [0, 4]
    assert sweep.task.languages == ["te"]


def test_dump_round_trips(tmp_path):
    sweep = config.load("quickstart")
    (tmp_path / "x.yaml").write_text(config.dump(sweep))
    assert config.load(tmp_path / "x.yaml").model_dump() == {**sweep.model_dump(), "name": "quickstart"}


@pytest.mark.parametrize(
    "override, expected",
    [
        ("search.lrr=0.1", "unknown key search.lrr (did you mean 'lr'?)"),
        ("trian.max_steps=5", "unknown key trian (did you mean 'train'?)"),
        ("search.lr.low=-0.001", "search.lr.low: must be greater than 0 (got -0.001)"),
        ("search.lr=0", "search.lr: must be greater than 0 (got 0)"),
        ("search.lr={low: 0.1, high: 0.01}", "low must be <= high (got low=0.1, high=0.01)"),
        ("search.adapter_rank=[8, -1]", "search.adapter_rank.1: must be greater than or equal to 0 (got -1)"),
        ("search.num_samples=0", "search.num_samples: must be greater than or equal to 1 (got 0)"),
        ("search.num_samples=many", "search.num_samples: must be a valid integer"),
        (
            "search.teacher=[xxl]",
            "search.teacher: family 'tiny' has no size (did you mean 'xl'?); sizes: xxs, xs, s, sm, m, l, xl "
            "(got 'xxl')",
        ),
        ("search.student=[xss]", "did you mean 'xs'?"),
        ("search.teacher=[xs]", "no teacher is larger than any student"),
        ("family.name=mt6", "family.name: unknown family (did you mean 'mt5'?); known:"),
        ("task.languages=[]", "task.languages: List should have at least 1 item"),
        ("task.languages=[de]", "'de' cannot be scored"),
        ("task.languages=[xx]", "'xx' is not an XTREME-R language"),
        ("task.name=builtin/cldrr", "unknown task 'builtin/cldrr' (did you mean 'builtin/cldr'?)"),
        ("train.eval_every=1000", "train.eval_every: must be <= train.max_steps (240) (got 1000)"),
        (
            "train.checkpoint_every_s=-1",
            "train.checkpoint_every_s: must be greater than or equal to 0 (got -1)",
        ),
        ("eval.tau=1.5", "eval.tau: must be less than 1 (got 1.5)"),
        ("eval.langid=fasttxt", "eval.langid: unknown backend (did you mean 'fasttext'?); known:"),
        ("stop.wlr.mode=relative", "stop.wlr.mode: must be 'absolute' or 'rung' (got 'relative')"),
        ("resources.gpu=-1", "resources.gpu: must be greater than or equal to 0 (got -1)"),
        ("name=a/b", "name: String should match pattern"),
        ("train.aux_translation=1", "train.aux_translation: must be less than 1 (got 1)"),
        (
            "train.aux_translation=0.99",
            "train.aux_translation: leaves no room in a batch of 32 for both the task and translation",
        ),
        (
            "search.aux_translation=[0, 0.99]",
            "search.aux_translation: leaves no room in a batch of 32 for both the task and translation",
        ),
        ("search.aux_translation=[1.5]", "search.aux_translation.0: must be less than 1 (got 1.5)"),
        ("teacher.aux_translation=-0.1", "teacher.aux_translation: must be greater than or equal to 0"),
        ("family.zoo.translation_share=1", "family.zoo.translation_share: must be less than 1"),
        ("eval.no_repeat_ngram=-1", "eval.no_repeat_ngram: must be greater than or equal to 0"),
        ("distill.structure_temperature=0", "distill.structure_temperature: must be greater than 0 (got 0)"),
        ("distill.heads_lr=-0.001", "distill.heads_lr: must be greater than 0 (got -0.001)"),
        (
            "search.distill={word_temperature: [0.05, 0]}",
            "search.distill.word_temperature: must be greater than 0 (got 0.0)",
        ),
        (
            "search.distill={heads_lr: [0.01]}",
            "search.distill.heads_lr: not a searchable distillation setting",
        ),
    ],
)
def test_bad_values_are_one_line_naming_the_key_and_value(override, expected):
    with pytest.raises(UserInputError) as err:
        config.load("quickstart", [override])
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(str(config.SHIPPED_SWEEPS / "quickstart.yaml") + ": ")
    assert expected in message


def test_bad_files_and_override_syntax(tmp_path):
    with pytest.raises(UserInputError, match="no such sweep file"):
        config.load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("task: [unclosed")
    with pytest.raises(UserInputError, match="not valid YAML"):
        config.load(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(UserInputError, match="top level must be a mapping"):
        config.load(tmp_path / "list.yaml")
    with pytest.raises(UserInputError, match=r"expected KEY\.PATH=VALUE"):
        config.load("quickstart", ["train.max_steps"])
    with pytest.raises(UserInputError, match="is a value, not a section"):
        config.load("quickstart", ["name.x=1"])


def test_distillation_temperatures_and_heads_lr_default_to_the_values_they_replace():
    distill = config.load("quickstart").distill

    def default(fn):
        return inspect.signature(fn).parameters["temperature"].default

    assert distill.structure_temperature == default(structure_loss)
    assert distill.word_temperature == default(word_align_loss)
    assert distill.heads_lr is None  # the trial's lr
    searched = config.load("quickstart", ["search.distill={structure_temperature: {low: 0.05, high: 2}}"])
    assert searched.search.distill["structure_temperature"] == config.LogRange(low=0.05, high=2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the sweep file is empty"),
        ("# only a comment\n", "the sweep file is empty"),
        ("null\n", "the sweep file is empty"),
        ("{}\n", "the sweep file is empty"),
        ("just a string\n", "top level must be a mapping of keys (got str)"),
        ("42\n", "top level must be a mapping of keys (got int)"),
    ],
)
def test_empty_and_non_mapping_files_are_refused(tmp_path, text, expected):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    with pytest.raises(UserInputError) as err:
        config.load(path)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_a_binary_file_is_refused_in_one_line(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(UserInputError, match="not a text file"):
        config.load(path)


def test_checkpoints_at_every_evaluation_by_default_and_always_at_the_last_step():
    every = config.load("quickstart").train  # max_steps 240
    assert every.checkpoint_due(80, 0.0) and every.checkpoint_due(240, 0.0)
    timed = config.load("quickstart", ["train.checkpoint_every_s=600"]).train
    assert not timed.checkpoint_due(80, 599.0) and timed.checkpoint_due(160, 600.0)
    assert timed.checkpoint_due(240, 1.0)  # the last step: the trial's final state and rows


def test_lapt_is_off_by_default_and_targets_the_evaluation_languages():
    assert config.load("quickstart").train.lapt is None
    sweep = config.load("quickstart", ["train.lapt={steps: 30}"])
    assert sweep.train.lapt is not None
    assert (sweep.train.lapt.steps, sweep.train.lapt.languages, sweep.train.lapt.lr) == (30, "targets", 1e-3)
    listed = config.load("quickstart", ["train.lapt={steps: 30, languages: [sw, te], lr: 3.0e-4}"])
    assert listed.train.lapt is not None and listed.train.lapt.languages == ["sw", "te"]


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.lapt={languages: [sw]}", "train.lapt.steps: Field required"),
        ("train.lapt={steps: 0}", "train.lapt.steps: must be greater than or equal to 1 (got 0)"),
        ("train.lapt={steps: 5, lr: -1}", "train.lapt.lr: must be greater than 0 (got -1)"),
        (
            "train.lapt={steps: 5, languages: []}",
            "train.lapt.languages: must name at least one language (got [])",
        ),
        (
            "train.lapt={steps: 5, languages: all}",
            "train.lapt.languages: must be 'targets' or a list of language codes (got 'all')",
        ),
        (
            "train.lapt={steps: 5, languages: [sw, de]}",
            "train.lapt.languages: not a language of task builtin/cldr; its languages: en ar az fr",
        ),
        ("train.lapt={steps: 5, stpes: 3}", "unknown key train.lapt.stpes (did you mean 'steps'?)"),
    ],
)
def test_lapt_mistakes_are_one_line_naming_the_key_and_value(override, expected):
    with pytest.raises(UserInputError) as err:
        config.load("quickstart", [override])
    message = str(err.value)
    assert "\n" not in message
    assert expected in message, message
