"""Model families: a ladder of sizes with parameter counts, so ratios are known before anything loads.

A size's ``source`` is what ``load_seq2seq`` accepts: a hub id (``google/mt5-small``), a local path, or
``zoo:<size>`` for the offline tiny family that ``mmkd zoo build`` pretrains. Parameter counts of hub
models are the published totals (embeddings included); the tiny family's are exact.

A size also knows its *non-embedding* parameters, which scaling-law work counts (Kaplan et al. 2020;
Busbridge et al. 2025): the total minus the token embedding (and the output projection when it is not
tied to it) and learned position tables. It matters for ratios: 85% of mT5-small is its 250k-token
embedding, so mT5 large/small is 4.0 by total parameters but about 16 without embeddings. The tiny
family's counts are exact (from its model config); a hub size's embedding is vocab x d_model (x2 when
untied) from the model's published config, noted next to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmkd.errors import UserInputError
from mmkd.registry import Registry, did_you_mean


@dataclass(frozen=True)
class Shape:
    """The architecture numbers the memory plan needs (mmkd/plan.py), from each model's published config."""

    d_model: int
    d_ff: int
    encoder_layers: int
    decoder_layers: int
    heads: int
    d_kv: int  # per head: the attention's inner width is heads x d_kv (not always d_model: mT5-small)
    vocab: int
    gated: bool = False  # T5 v1.1's gated GELU: two input matrices in every feed-forward block
    dropout: bool = True  # finetuned with dropout (the hub configs' 0.1): its masks are kept for backward


@dataclass(frozen=True)
class ModelSize:
    name: str
    source: str
    params: int
    embedding: int = 0  # token (and untied output, learned position) embedding parameters
    shape: Shape | None = None

    @property
    def non_embedding(self) -> int:
        return self.params - self.embedding

    def count(self, basis: str) -> int:
        """Parameters on ``basis`` (``family.ratio_basis``): ``non_embedding`` or ``total``."""
        if basis not in RATIO_BASES:
            raise ValueError(f"ratio basis must be one of {', '.join(RATIO_BASES)} (got {basis!r})")
        return self.non_embedding if basis == "non_embedding" else self.params


RATIO_BASES = ("non_embedding", "total")


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

    def ratio(self, teacher: str, student: str, basis: str = "non_embedding") -> float:
        return self.size(teacher).count(basis) / self.size(student).count(basis)


FAMILIES: Registry[Family] = Registry("model family")


def get_family(name: str) -> Family:
    return FAMILIES.get(name)


def _register(family: Family) -> None:
    FAMILIES.register(family.name)(family)


def _emb(vocab: int, d_model: int, untied: bool) -> int:
    return vocab * d_model * (2 if untied else 1)


# The tiny family (mmkd.models.zoo.TINY_SIZES): exact counts of each size's model, the embedding being
# the byte embedding (tied to the output projection) and T5's relative-position tables. Written out,
# like the hub families', so that validating a sweep loads no torch; tests/models/test_families.py
# counts them again on the meta device.
_register(
    Family(
        name="tiny",
        sizes=(
            ModelSize("xxs", "zoo:xxs", 11_504, 6_272, Shape(16, 32, 1, 1, 2, 8, 384, dropout=False)),
            ModelSize("xs", "zoo:xs", 33_120, 12_416, Shape(32, 64, 1, 1, 2, 16, 384, dropout=False)),
            ModelSize("s", "zoo:s", 189_440, 24_832, Shape(64, 128, 2, 2, 4, 16, 384, dropout=False)),
            ModelSize("sm", "zoo:sm", 287_936, 30_976, Shape(80, 160, 2, 2, 4, 20, 384, dropout=False)),
            ModelSize("m", "zoo:m", 591_712, 37_120, Shape(96, 192, 3, 3, 4, 24, 384, dropout=False)),
            ModelSize("l", "zoo:l", 1_362_944, 49_408, Shape(128, 256, 4, 4, 4, 32, 384, dropout=False)),
            ModelSize("xl", "zoo:xl", 3_027_456, 74_112, Shape(192, 384, 4, 4, 6, 32, 384, dropout=False)),
        ),
        lora_targets=("q", "v"),
        language_tag=True,
    )
)
# mT5 (T5 v1.1): vocab 250,112, output projection untied; d_model 512/768/1024/2048/4096. ByT5: 384 byte
# ids, untied; d_model 1472/1536/1536/2560/4672. NLLB-200: vocab 256,206, tied, sinusoidal positions;
# d_model 1024 (600M, 1.3B) and 2048 (3.3B). mBART-50: vocab 250,054, tied, 2 learned position tables of
# 1,026 x 1,024. Shapes: d_model, d_ff, encoder and decoder layers, heads, d_kv, vocab (each model's
# config.json on the hub).
_register(
    Family(
        name="mt5",
        sizes=(
            ModelSize(
                "small",
                "google/mt5-small",
                300_000_000,
                _emb(250_112, 512, True),
                Shape(512, 1024, 8, 8, 6, 64, 250_112, gated=True),
            ),
            ModelSize(
                "base",
                "google/mt5-base",
                580_000_000,
                _emb(250_112, 768, True),
                Shape(768, 2048, 12, 12, 12, 64, 250_112, gated=True),
            ),
            ModelSize(
                "large",
                "google/mt5-large",
                1_200_000_000,
                _emb(250_112, 1024, True),
                Shape(1024, 2816, 24, 24, 16, 64, 250_112, gated=True),
            ),
            ModelSize(
                "xl",
                "google/mt5-xl",
                3_700_000_000,
                _emb(250_112, 2048, True),
                Shape(2048, 5120, 24, 24, 32, 64, 250_112, gated=True),
            ),
            ModelSize(
                "xxl",
                "google/mt5-xxl",
                13_000_000_000,
                _emb(250_112, 4096, True),
                Shape(4096, 10240, 24, 24, 64, 64, 250_112, gated=True),
            ),
        ),
        lora_targets=("q", "v"),
    )
)
_register(
    Family(
        name="byt5",
        sizes=(
            ModelSize(
                "small",
                "google/byt5-small",
                300_000_000,
                _emb(384, 1472, True),
                Shape(1472, 3584, 12, 4, 6, 64, 384, gated=True),
            ),
            ModelSize(
                "base",
                "google/byt5-base",
                580_000_000,
                _emb(384, 1536, True),
                Shape(1536, 3968, 18, 6, 12, 64, 384, gated=True),
            ),
            ModelSize(
                "large",
                "google/byt5-large",
                1_200_000_000,
                _emb(384, 1536, True),
                Shape(1536, 3840, 36, 12, 16, 64, 384, gated=True),
            ),
            ModelSize(
                "xl",
                "google/byt5-xl",
                3_740_000_000,
                _emb(384, 2560, True),
                Shape(2560, 6720, 36, 12, 32, 64, 384, gated=True),
            ),
            ModelSize(
                "xxl",
                "google/byt5-xxl",
                12_900_000_000,
                _emb(384, 4672, True),
                Shape(4672, 12352, 36, 12, 64, 64, 384, gated=True),
            ),
        ),
        lora_targets=("q", "v"),
    )
)
_register(
    Family(
        name="nllb",
        sizes=(
            ModelSize(
                "600m",
                "facebook/nllb-200-distilled-600M",
                615_000_000,
                _emb(256_206, 1024, False),
                Shape(1024, 4096, 12, 12, 16, 64, 256_206),
            ),
            ModelSize(
                "1.3b",
                "facebook/nllb-200-distilled-1.3B",
                1_370_000_000,
                _emb(256_206, 1024, False),
                Shape(1024, 8192, 24, 24, 16, 64, 256_206),
            ),
            ModelSize(
                "3.3b",
                "facebook/nllb-200-3.3B",
                3_340_000_000,
                _emb(256_206, 2048, False),
                Shape(2048, 8192, 24, 24, 16, 128, 256_206),
            ),
        ),
        lora_targets=("q_proj", "v_proj"),
        forced_bos_lang=True,
    )
)
_register(
    Family(
        name="mbart50",
        # mBART-50 ships in one size; pair it with NLLB-style students through a custom family if needed.
        sizes=(
            ModelSize(
                "large",
                "facebook/mbart-large-50",
                611_000_000,
                _emb(250_054, 1024, False) + 2 * 1026 * 1024,
                Shape(1024, 4096, 12, 12, 16, 64, 250_054),
            ),
        ),
        lora_targets=("q_proj", "v_proj"),
        forced_bos_lang=True,
    )
)
