"""The bounded-history TPE: plain TPE on small sweeps, a bounded view of the history on large ones."""

import optuna
import pytest

from mmkd.sweep.sampler import BEST_KEPT, BoundedTPESampler, _BoundedHistory

optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    rank = trial.suggest_categorical("rank", [0, 4, 8])
    return -((x - 3e-3) ** 2) * 1e4 - rank * 0.01


def params(sampler: optuna.samplers.BaseSampler, n: int) -> list[dict]:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=n)
    return [t.params for t in study.trials]


def test_small_sweep_proposes_exactly_what_plain_tpe_proposes():
    plain = params(optuna.samplers.TPESampler(seed=3, n_startup_trials=4), 40)
    bounded = params(BoundedTPESampler(seed=3, n_startup_trials=4, max_history=50), 40)
    assert bounded == plain


def test_seeded_large_sweep_is_reproducible_and_differs_from_plain_past_the_bound():
    a = params(BoundedTPESampler(seed=1, n_startup_trials=4, max_history=30), 60)
    b = params(BoundedTPESampler(seed=1, n_startup_trials=4, max_history=30), 60)
    plain = params(optuna.samplers.TPESampler(seed=1, n_startup_trials=4), 60)
    assert a == b
    assert a[:31] == plain[:31]  # identical until the history first exceeds the bound
    assert a != plain


def test_view_keeps_the_best_and_the_most_recent_finished_trials():
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=200)
    running = study.ask()
    view = _BoundedHistory(study, 60)
    trials = view._get_trials(deepcopy=False)
    finished = [t for t in trials if t.state != optuna.trial.TrialState.RUNNING]
    assert len(finished) == 60
    assert running.number in {t.number for t in trials}  # running trials stay (constant liar)
    best = sorted(study.trials[:200], key=lambda t: t.value, reverse=True)[:BEST_KEPT]
    assert {t.number for t in best} <= {t.number for t in finished}
    others = [t.number for t in finished if t.number not in {b.number for b in best}]
    assert others == sorted(others) and others[-1] == 199  # the most recent ones, in number order
    assert [t.number for t in trials] == sorted(t.number for t in trials)
    assert view.direction == study.direction  # everything else is the study's


def test_bound_must_exceed_the_best_kept():
    with pytest.raises(ValueError, match=str(BEST_KEPT)):
        BoundedTPESampler(max_history=BEST_KEPT)
