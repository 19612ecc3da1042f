"""Metric keys and language-group names: the report contract's spelling, in one place.

A report key is ``<split>/<where>/<metric>``: ``split`` is ``eval`` (dev) or ``test`` (the confirm stage's
last evaluation); ``where`` is a language code or a group (``GROUPS``; a task without Joshi class 0-2
languages names its low-resource group ``lowest_class<k>``); ``metric`` is one of ``PER_LANGUAGE`` or a
task metric's key (``f1``, ``em``, ``exact``). The objective is ``eval/score``: the zero-shot mean of the
task's primary metric (F1 for QA and NER, chrF otherwise), labelled with ``objective_label``.

No imports beyond the standard library: the simulator's actors, the CLI and the curves all read it.
"""

from __future__ import annotations

EVAL, TEST = "eval", "test"
STEP = "step"
TRAIN_LOSS = "train/loss"

SOURCE, ZERO_SHOT, LOW_RESOURCE = "source", "zero_shot", "low_resource"
#: The groups a report averages over, next to the per-language metrics: ``eval/<group>/<metric>``.
GROUPS = (SOURCE, ZERO_SHOT, LOW_RESOURCE)
LOWEST_CLASS = "lowest_class"

CHRF, WLR, SRC_RATE, UNDETERMINED, LID_REF_ACC = "chrf", "wlr", "src_rate", "undetermined", "lid_ref_acc"
#: What every evaluation reports for each language, whatever the task.
PER_LANGUAGE = (CHRF, WLR, SRC_RATE, UNDETERMINED, LID_REF_ACC)


#: ``<exp>/confirm/``: the confirm stage's Tune experiment inside a sweep's (mmkd.sweep.confirm).
CONFIRM_DIR = "confirm"


def key(where: str, metric: str, split: str = EVAL) -> str:
    """``eval/<language or group>/<metric>``."""
    return f"{split}/{where}/{metric}"


SCORE = f"{EVAL}/score"
TEST_SCORE = f"{TEST}/score"
SOURCE_CHRF = key(SOURCE, CHRF)
ZERO_SHOT_CHRF = key(ZERO_SHOT, CHRF)
ZERO_SHOT_WLR = key(ZERO_SHOT, WLR)
LOW_RESOURCE_CHRF = key(LOW_RESOURCE, CHRF)
LOW_RESOURCE_WLR = key(LOW_RESOURCE, WLR)

#: How a metric is written for readers (tables, plots, the report).
LABELS = {CHRF: "chrF", WLR: "WLR", "f1": "F1", "em": "EM", "exact": "exact"}


def label(metric: str) -> str:
    return LABELS.get(metric, metric)


def objective_label(primary: str) -> str:
    """How tables name ``eval/score``: ``0-shot F1`` for a QA or NER task, ``0-shot chrF`` otherwise."""
    return f"0-shot {label(primary)}"


def loss_key(term: str) -> str:
    """``train/loss`` for the total, ``train/loss_<term>`` for one loss term."""
    return TRAIN_LOSS if term == "loss" else f"{TRAIN_LOSS}_{term}"


def is_lowest_class(name: str) -> bool:
    """A task without Joshi class 0-2 languages names its lowest-class group ``lowest_class<k>``."""
    return name.startswith(LOWEST_CLASS)


def is_group(name: str) -> bool:
    return name in GROUPS or is_lowest_class(name)


def per_language(report_key: str) -> bool:
    """``eval/<lang>/<metric>`` or ``test/<lang>/<metric>``, as opposed to a group's or ``eval/score``."""
    parts = report_key.split("/")
    return len(parts) == 3 and parts[0] in (EVAL, TEST) and not is_group(parts[1])
