"""Model families: a ladder of sizes with parameter counts, so ratios are known before anything loads.

A size's ``source`` is what ``load_seq2seq`` accepts: a hub id (``google/mt5-small``), a local path, or
``zoo:<size>`` for the offline tiny family that ``mmkd zoo build`` pretrains. Parameter counts of hub
models are the published totals (embeddings included); the tiny family's are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmkd.errors import UserInputError
from mmkd.registry import Registry, did_you_mean


@dataclass(frozen=True)
class ModelSize:
    name: str
    source: str
    params: int


@dataclass(frozen=True)
class Family:
    name: str
    sizes: tuple[ModelSize, ...]
    lora_targets: tuple[str, ...]
    # mBART-50 and NLLB pick the output language with a forced first decoder token.
    forced_bos_lang: bool = False
    # The tiny family is pretrained with a target-language tag before its input (``<2sw> ...``,
    # mmkd.models.langcodes.input_tag), so it is told the output language that way.
    language_tag: bool = False

    def size(self, name: str) -> ModelSize:
        for s in self.sizes:
            if s.name == name:
                return s
        known = [s.name for s in self.sizes]
        raise UserInputError(
            f"family {self.name!r} has no size {name!r}{did_you_mean(name, known)}; sizes: {', '.join(known)}"
        )

    def ratio(self, teacher: str, student: str) -> float:
        return self.size(teacher).params / self.size(student).params


FAMILIES: Registry[Family] = Registry("model family")


def get_family(name: str) -> Family:
    return FAMILIES.get(name)


def _register(family: Family) -> None:
    FAMILIES.register(family.name)(family)


def _tiny() -> Family:
    from mmkd.models.zoo import TINY_SIZES, tiny_param_count

    return Family(
        name="tiny",
        sizes=tuple(ModelSize(n, f"zoo:{n}", tiny_param_count(n)) for n in TINY_SIZES),
        lora_targets=("q", "v"),
        language_tag=True,
    )


_register(_tiny())
_register(
    Family(
        name="mt5",
        sizes=(
            ModelSize("small", "google/mt5-small", 300_000_000),
            ModelSize("base", "google/mt5-base", 580_000_000),
            ModelSize("large", "google/mt5-large", 1_200_000_000),
            ModelSize("xl", "google/mt5-xl", 3_700_000_000),
            ModelSize("xxl", "google/mt5-xxl", 13_000_000_000),
        ),
        lora_targets=("q", "v"),
    )
)
_register(
    Family(
        name="byt5",
        sizes=(
            ModelSize("small", "google/byt5-small", 300_000_000),
            ModelSize("base", "google/byt5-base", 580_000_000),
            ModelSize("large", "google/byt5-large", 1_200_000_000),
            ModelSize("xl", "google/byt5-xl", 3_740_000_000),
            ModelSize("xxl", "google/byt5-xxl", 12_900_000_000),
        ),
        lora_targets=("q", "v"),
    )
)
_register(
    Family(
        name="nllb",
        sizes=(
            ModelSize("600m", "facebook/nllb-200-distilled-600M", 615_000_000),
            ModelSize("1.3b", "facebook/nllb-200-distilled-1.3B", 1_370_000_000),
            ModelSize("3.3b", "facebook/nllb-200-3.3B", 3_340_000_000),
        ),
        lora_targets=("q_proj", "v_proj"),
        forced_bos_lang=True,
    )
)
_register(
    Family(
        name="mbart50",
        # mBART-50 ships in one size; pair it with NLLB-style students through a custom family if needed.
        sizes=(ModelSize("large", "facebook/mbart-large-50", 611_000_000),),
        lora_targets=("q_proj", "v_proj"),
        forced_bos_lang=True,
    )
)
