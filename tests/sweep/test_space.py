"""The search space as Optuna sees it: what each trial suggests."""

import optuna

from mmkd import config
from mmkd.sweep.space import Space


def _suggested(overrides: list[str], n: int = 12) -> list[dict]:
    space = Space(config.load("quickstart", overrides))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(n):
        trial = study.ask()
        constants = space(trial)
        out.append({**trial.params, **constants})
        study.tell(trial, 0.0)
    return out


def test_auxiliary_translation_is_searched_only_when_listed():
    searched = _suggested(["search.aux_translation=[0, 0.1]"])
    assert {t["aux_translation"] for t in searched} == {0, 0.1}
    assert all({"lr", "adapter_rank", "models", "ratio"} <= set(t) for t in searched)
    assert not any("aux_translation" in t for t in _suggested(["search.aux_translation=null"]))
