"""The scale simulation's learning-curve model, cost model and checkpoints (no Ray cluster needed)."""

import math
import subprocess
import sys

import pytest

from mmkd.config import Artefacts, TrialConfig, load
from mmkd.sweep import simulate
from mmkd.sweep.simulate import Languages, drift, evaluate, source_quality, step_seconds, train_losses

LANGS = Languages("en", ("en", "fr", "ru", "te", "sw"), ("te", "sw"))
PARAMS = {"xs": 33_120, "s": 189_440, "m": 591_712, "l": 1_362_944}


def cfg(lr=1e-3, rank=0, student="s", teacher="l", **extra):
    return {
        "lr": lr,
        "adapter_rank": rank,
        "teacher": teacher,
        "student": student,
        "teacher_params": PARAMS[teacher],
        "student_params": PARAMS[student],
        "ratio": PARAMS[teacher] / PARAMS[student],
        **extra,
    }


def test_deterministic_per_config_step_and_seed():
    assert evaluate(cfg(), 80, LANGS) == evaluate(cfg(), 80, LANGS)
    assert evaluate(cfg(), 80, LANGS) != evaluate(cfg(), 80, LANGS, seed=1)
    assert evaluate(cfg(), 80, LANGS) != evaluate(cfg(lr=1.1e-3), 80, LANGS)


def test_reports_the_metric_contract():
    m = evaluate(cfg(), 80, LANGS)
    for lang in LANGS.langs:
        for key in ("chrf", "wlr", "src_rate", "undetermined", "lid_ref_acc"):
            assert 0 <= m[f"eval/{lang}/{key}"] <= (100 if key == "chrf" else 1)
    assert m["eval/score"] == m["eval/zero_shot/chrf"]
    assert m["eval/source/chrf"] == m["eval/en/chrf"]
    zero_shot = [m[f"eval/{lang}/wlr"] for lang in ("fr", "ru", "te", "sw")]
    assert m["eval/zero_shot/wlr"] == pytest.approx(sum(zero_shot) / 4)
    assert m["eval/low_resource/wlr"] == pytest.approx((m["eval/te/wlr"] + m["eval/sw/wlr"]) / 2)
    losses = train_losses(cfg(), 80, {"task": 1.0, "token": 1.0, "word": 0.0})
    assert set(losses) == {"loss", "task", "token"}  # reporting.build: train/loss, train/loss_<term>


def test_the_objective_follows_the_task_metric():
    qa = Languages("en", ("en", "sw", "te", "fr"), ("sw", "te"), metric="qa")
    m = evaluate(cfg(), 80, qa)
    assert m["eval/score"] == m["eval/zero_shot/f1"] != m["eval/zero_shot/chrf"]
    assert m["eval/source/em"] == m["eval/en/em"]
    assert m["eval/low_resource/f1"] == pytest.approx((m["eval/sw/f1"] + m["eval/te/f1"]) / 2)


def test_quality_rises_with_steps_and_student_size():
    steps = [source_quality(cfg(), s) for s in (0, 40, 80, 160, 240)]
    assert steps == sorted(steps) and steps[-1] > steps[0] + 10
    sizes = [source_quality(cfg(student=s), 240) for s in ("xs", "s", "m")]
    assert sizes == sorted(sizes)
    early, late = (evaluate(cfg(), s, LANGS)["eval/score"] for s in (20, 240))
    assert late > early


def test_quality_peaks_near_the_best_learning_rate_and_at_a_moderate_ratio():
    by_lr = {lr: source_quality(cfg(lr=lr), 10_000) for lr in (1e-4, 1e-3, 1e-2)}
    assert by_lr[1e-3] > by_lr[1e-4] and by_lr[1e-3] > by_lr[1e-2]
    # Same student size, different teachers: the distillation gain is largest at a ratio near 8.
    base = cfg(student="s")
    by_ratio = {r: source_quality({**base, "ratio": r}, 240) for r in (1.5, 8.0, 64.0)}
    assert by_ratio[8.0] > by_ratio[1.5] and by_ratio[8.0] > by_ratio[64.0]


def test_wrong_language_rate_rises_with_lr_and_is_lower_with_small_adapters():
    by_lr = [drift(cfg(lr=lr), 240, low_resource=False) for lr in (1e-4, 1e-3, 3e-3, 1e-2)]
    assert by_lr == sorted(by_lr) and by_lr[-1] - by_lr[0] > 0.5
    by_rank = [drift(cfg(lr=3e-3, rank=r), 240, low_resource=False) for r in (4, 16, 64, 0)]
    assert by_rank == sorted(by_rank)
    assert drift(cfg(lr=3e-3), 240, low_resource=True) > drift(cfg(lr=3e-3), 240, low_resource=False)
    assert drift(cfg(lr=3e-3), 20, low_resource=False) < drift(cfg(lr=3e-3), 240, low_resource=False)
    reckless = evaluate(cfg(lr=1e-2), 240, LANGS)
    careful = evaluate(cfg(lr=1e-4), 240, LANGS)
    assert reckless["eval/low_resource/wlr"] > 0.8 > 0.3 > careful["eval/low_resource/wlr"]


def test_cost_scales_with_the_student_and_an_uncached_teacher():
    cached = ["simulate.step_seconds=1.0", "simulate.eval_seconds=2.0"]

    def cost(student, overrides=cached):
        sweep = load("quickstart", overrides)
        return step_seconds(TrialConfig.build(cfg(student=student), sweep, Artefacts()))

    step, ev = cost("s")
    assert step == pytest.approx(PARAMS["s"] / PARAMS["l"]) and ev == pytest.approx(2 * step)
    live, _ = cost("s", [*cached, "distill.cache=false"])
    assert live == pytest.approx(step + 1 / 3)
    assert cost("xs")[0] < step


def test_checkpoint_round_trip_and_damaged_checkpoint(tmp_path, capsys):
    from ray import tune

    simulate.save_checkpoint(tmp_path / "ok" / simulate.CHECKPOINT_DIR, 120)
    assert simulate.restored_step(tune.Checkpoint.from_directory(str(tmp_path / "ok"))) == 120
    assert simulate.restored_step(None) == 0
    (tmp_path / "bad" / simulate.CHECKPOINT_DIR).mkdir(parents=True)
    (tmp_path / "bad" / simulate.CHECKPOINT_DIR / simulate.STATE_FILE).write_text("{not json")
    assert simulate.restored_step(tune.Checkpoint.from_directory(str(tmp_path / "bad"))) == 0
    assert "restarting this trial from step 0" in capsys.readouterr().err


def test_simulated_trial_actors_do_not_import_torch():
    code = (
        "import sys, mmkd.sweep.simulate, mmkd.sweep.telemetry; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_cli_simulate_flag_reaches_the_stored_config(monkeypatch):
    from mmkd import cli
    from mmkd.sweep import runner

    seen = {}
    monkeypatch.setattr(runner, "run", lambda sweep, **kw: seen.setdefault("sweep", sweep) and 0)
    assert cli.main(["sweep", "run", "quickstart", "--simulate", "--storage", "/nonexistent"]) == 0
    assert seen["sweep"].simulate.enabled
    seen.clear()
    cli.main(["sweep", "run", "quickstart", "--storage", "/nonexistent"])
    assert not seen["sweep"].simulate.enabled
    assert math.isclose(seen["sweep"].simulate.step_seconds, 0.05)
