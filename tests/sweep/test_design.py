"""The control arm (search.method) and the design grid (search.grid)."""

import optuna
import pytest

from mmkd import config
from mmkd.errors import UserInputError
from mmkd.sweep.space import Space, design_points


def distill_settings(sweep, searched):
    """The distillation settings of a trial with these searched values (mmkd.config.TrialConfig)."""
    pair = {"teacher": "l", "student": "s", "teacher_params": 2, "student_params": 1, "ratio": 2.0}
    trial = {"lr": 1e-3, "adapter_rank": 0, **pair, **searched}
    return config.TrialConfig.build(trial, sweep, config.Artefacts()).distill


def test_methods_switch_loss_terms_off_and_keep_the_task_loss():
    sweep = config.load("quickstart")  # token, word, sentence, structure all on
    none = distill_settings(sweep, {"method": "none"})
    token = distill_settings(sweep, {"method": "token", "distill.token": 0.3})
    mmkd = distill_settings(sweep, {"method": "mmkd"})
    assert (none.task, none.token, none.word, none.sentence, none.structure) == (1.0, 0, 0, 0, 0)
    assert (token.token, token.word, token.structure) == (0.3, 0, 0)
    assert mmkd == sweep.distill
    assert distill_settings(sweep, {}) == sweep.distill  # trials from before the control arm


def test_method_is_searched_only_when_there_is_a_choice():
    one, two = optuna.create_study().ask(), optuna.create_study().ask()
    constants = Space(config.load("quickstart"))(one)
    assert "method" not in one.params and constants["method"] == "mmkd" and constants["stage"] == "search"
    constants = Space(config.load("quickstart", ["search.method=[none, mmkd]"]))(two)
    assert two.params["method"] in {"none", "mmkd"} and "method" not in constants


def test_grid_gives_every_cell_the_same_number_of_trials_each_once_first():
    sweep = config.load(
        "quickstart",
        [
            "search.teacher=[s, m, l]",
            "search.student=[xxs, xs]",
            "search.adapter_rank=[0, 8]",
            "search.method=[none, mmkd]",
            "search.grid=true",
            "search.num_samples=48",
        ],
    )
    cells = sweep.cells()
    # Every student meets 3 teachers with MMKD; the control reads no teacher: once per student and rank.
    assert len([c for c in cells if c[2] == "mmkd"]) == 2 * 3 * 2
    assert sorted((pair.split(":")[1], rank) for pair, rank, method in cells if method == "none") == [
        ("xs", 0), ("xs", 8), ("xxs", 0), ("xxs", 8),
    ]  # fmt: skip
    points = design_points(sweep)
    assert len(points) == 48
    keys = [(p["models"], p["adapter_rank"], p["method"]) for p in points]
    assert sorted(set(keys[:16])) == sorted(cells) and keys[16:32] == keys[:16] == keys[32:]
    assert design_points(config.load("quickstart")) == []


@pytest.mark.parametrize(
    "override, expected",
    [
        ("search.method=[none, mdkd]", "search.method: unknown method 'mdkd' (did you mean 'mmkd'?)"),
        ("search.method=[none, none]", "search.method: lists a method twice"),
        ("family.ratio_basis=params", "family.ratio_basis: must be 'non_embedding' or 'total'"),
        ("confirm.select_on=test", "confirm.select_on: must be 'source' or 'target'"),
        ("confirm.seeds=0", "confirm.seeds: must be greater than or equal to 1"),
    ],
)
def test_bad_values_are_one_line_naming_the_key(override, expected):
    with pytest.raises(UserInputError) as err:
        config.load("quickstart", [override])
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_grid_needs_a_whole_number_of_trials_per_cell_and_confirm_needs_real_trials():
    with pytest.raises(
        UserInputError, match=r"search.num_samples: with search.grid .* of the 6 grid points .*\(got 8\)"
    ):
        config.load(
            "quickstart",
            ["search.grid=true", "search.method=[none]", "search.student=[xs, s, m]", "search.num_samples=8"],
        )
    with pytest.raises(UserInputError, match="confirm: simulated trials evaluate no test split"):
        config.load("quickstart", ["confirm.seeds=2", "simulate.enabled=true"])


def test_listed_learning_rates_are_a_grid_dimension_shared_by_the_control_and_mmkd():
    """With search.grid and a list of rates, every cell gets every rate: the arms of a gain are then
    selected from the same rates, not from two random draws each."""
    sets = ["search.method=[none, mmkd]", "search.grid=true", "search.lr=[1.0e-4, 3.0e-4]"]
    sweep = config.load("quickstart", [*sets, "search.num_samples=16"])  # (l:s, l:m) x (0, 8) x 2 methods
    cells = sweep.cells()
    points = design_points(sweep)
    assert len(cells) == 8 and len(points) == 16
    keys = sorted((p["models"], p["adapter_rank"], p["method"], p["lr"]) for p in points)
    assert keys == sorted((*cell, lr) for cell in cells for lr in (1.0e-4, 3.0e-4))
    trial = optuna.create_study().ask()
    constants = Space(sweep)(trial)
    assert trial.params["lr"] in {1.0e-4, 3.0e-4} and "lr" not in constants
    with pytest.raises(UserInputError, match="multiple of the 16 grid points"):
        config.load("quickstart", [*sets, "search.num_samples=8"])
