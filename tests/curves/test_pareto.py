"""The Pareto front of a multi-objective sweep: pareto.csv, pareto.png and a report section."""

import pandas as pd

from mmkd.curves import pareto

OBJECTIVES = {"eval/score": "max", "eval/low_resource/wlr": "min"}


def _final():
    # (score, wlr): a, b and c trade off; d is beaten by b on both; e ties b and is beaten on wlr;
    # f has no WLR (nothing determined) and is left out.
    points = {
        "a": (50, 0.6),
        "b": (40, 0.2),
        "c": (20, 0.1),
        "d": (35, 0.3),
        "e": (40, 0.25),
        "f": (60, None),
    }
    return pd.DataFrame(
        [
            {"trial_id": k, "eval/score": s, "eval/low_resource/wlr": w, "lr": 1e-3}
            for k, (s, w) in points.items()
        ]
    )


def test_the_front_is_the_trials_no_other_beats_on_every_objective():
    assert list(pareto.front(_final(), OBJECTIVES)["trial_id"]) == ["a", "b", "c"]


def test_a_multi_objective_sweep_gets_a_csv_a_plot_and_a_section(tmp_path):
    lines = pareto.section(_final(), OBJECTIVES, tmp_path, lambda df: df.to_csv(index=False))
    table = pd.read_csv(tmp_path / "pareto.csv")
    assert list(table["trial_id"]) == ["a", "b", "c"]
    assert list(table.columns[-2:]) == list(OBJECTIVES)
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Pareto front" in lines and any("3 of 6 trials are on the front" in line for line in lines)


def test_one_objective_has_no_front(tmp_path):
    assert pareto.section(_final(), {"eval/score": "max"}, tmp_path, str) == []
    assert not (tmp_path / "pareto.csv").exists()


def test_objectives_come_from_the_stored_config(tmp_path):
    (tmp_path / "mmkd").mkdir()
    (tmp_path / "mmkd" / "config.yaml").write_text(
        "search:\n  objectives:\n    eval/score: max\n    x/y: min\n"
    )
    assert pareto.sweep_objectives(tmp_path) == {"eval/score": "max", "x/y": "min"}
    assert pareto.sweep_objectives(tmp_path / "nothing") == {}
