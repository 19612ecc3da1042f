"""How each family is told its output language: a language token (NLLB-200, mBART-50) or a tag before
the input (the tiny family).

The tiny family is pretrained on tagged translation pairs (``<2sw> 3 days ago`` → ``siku 3 zilizopita``,
mmkd.models.zoo), like M2M-style multilingual translation models, so every input it sees later carries
the tag of the language it must answer in (``input_tag``); mT5 and ByT5 are told nothing.

Both are told the language to generate by a forced first decoder token (``forced_bos_token_id``) and the
language of their input by the tokenizer's ``src_lang``; the token is the family's own code:

- NLLB-200 (NLLB Team, 2022) uses FLORES-200 codes, language + script: ``deu_Latn``, ``zho_Hans``. Where
  ISO 639-1 names a macrolanguage, the code is the variety FLORES-200 has: ar → ``arb_Arab`` (Modern
  Standard Arabic), az → ``azj_Latn`` (North Azerbaijani, the Latin-script Wikipedia XTREME-R draws on),
  fa → ``pes_Arab``, ms → ``zsm_Latn`` (Standard Malay), qu → ``quy_Latn`` (Ayacucho, its only Quechua),
  sw → ``swh_Latn``, zh → ``zho_Hans`` (MLQA, XQuAD and Tatoeba's Chinese is simplified).
- mBART-50 (Tang et al., 2020) uses language + region: ``de_DE``, ``en_XX``, ``sw_KE``. It lacks 11 of the
  XTREME-R languages (bg el eu ht hu jv ms pa qu wo yo).

The tables cover the 50 XTREME-R languages, the only ones mmkd's tasks produce; ``tests/models`` checks
every code against the tokenizers' own lists in transformers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from mmkd.data.base import Example
from mmkd.errors import UserInputError
from mmkd.models.families import get_family

TAG_FORMAT = "<2{lang}> "

NLLB_CODES: dict[str, str] = {
    "af": "afr_Latn", "ar": "arb_Arab", "az": "azj_Latn", "bg": "bul_Cyrl", "bn": "ben_Beng",
    "de": "deu_Latn", "el": "ell_Grek", "en": "eng_Latn", "es": "spa_Latn", "et": "est_Latn",
    "eu": "eus_Latn", "fa": "pes_Arab", "fi": "fin_Latn", "fr": "fra_Latn", "gu": "guj_Gujr",
    "he": "heb_Hebr", "hi": "hin_Deva", "ht": "hat_Latn", "hu": "hun_Latn", "id": "ind_Latn",
    "it": "ita_Latn", "ja": "jpn_Jpan", "jv": "jav_Latn", "ka": "kat_Geor", "kk": "kaz_Cyrl",
    "ko": "kor_Hang", "lt": "lit_Latn", "ml": "mal_Mlym", "mr": "mar_Deva", "ms": "zsm_Latn",
    "my": "mya_Mymr", "nl": "nld_Latn", "pa": "pan_Guru", "pl": "pol_Latn", "pt": "por_Latn",
    "qu": "quy_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl", "sw": "swh_Latn", "ta": "tam_Taml",
    "te": "tel_Telu", "th": "tha_Thai", "tl": "tgl_Latn", "tr": "tur_Latn", "uk": "ukr_Cyrl",
    "ur": "urd_Arab", "vi": "vie_Latn", "wo": "wol_Latn", "yo": "yor_Latn", "zh": "zho_Hans",
}  # fmt: skip

MBART50_CODES: dict[str, str] = {
    "af": "af_ZA", "ar": "ar_AR", "az": "az_AZ", "bn": "bn_IN", "de": "de_DE", "en": "en_XX",
    "es": "es_XX", "et": "et_EE", "fa": "fa_IR", "fi": "fi_FI", "fr": "fr_XX", "gu": "gu_IN",
    "he": "he_IL", "hi": "hi_IN", "id": "id_ID", "it": "it_IT", "ja": "ja_XX", "ka": "ka_GE",
    "kk": "kk_KZ", "ko": "ko_KR", "lt": "lt_LT", "ml": "ml_IN", "mr": "mr_IN", "my": "my_MM",
    "nl": "nl_XX", "pl": "pl_PL", "pt": "pt_XX", "ro": "ro_RO", "ru": "ru_RU", "sw": "sw_KE",
    "ta": "ta_IN", "te": "te_IN", "th": "th_TH", "tl": "tl_XX", "tr": "tr_TR", "uk": "uk_UA",
    "ur": "ur_PK", "vi": "vi_VN", "zh": "zh_CN",
}  # fmt: skip

# Keyed by family name: a family registered with ``forced_bos_lang=True`` must have a table here.
LANG_CODES: dict[str, dict[str, str]] = {"nllb": NLLB_CODES, "mbart50": MBART50_CODES}


def forced_bos_token(family: str, lang: str) -> str | None:
    """The token that makes a model of ``family`` generate (or read) ISO 639-1 ``lang`` — NLLB ``deu_Latn``,
    mBART-50 ``de_DE`` — or ``None`` for families that need none (mT5, ByT5, tiny).

    A language the family has no token for is a ``UserInputError`` naming it and the family's languages.
    """
    fam = get_family(family)
    if not fam.forced_bos_lang:
        return None
    table = LANG_CODES[fam.name]
    if lang not in table:
        # Someone who writes the family's own code (deu_Latn, de_DE) or its 639-3 part (deu) is told the
        # 639-1 code; spelling suggestions among two-letter codes would only mislead.
        iso1 = {part: key for key, code in table.items() for part in (code, code.split("_")[0])}
        hint = f" (languages are ISO 639-1 codes: did you mean {iso1[lang]!r}?)" if lang in iso1 else ""
        raise UserInputError(
            f"family {fam.name!r} has no language token for {lang!r}{hint}; "
            f"its languages: {' '.join(sorted(table))}"
        )
    return table[lang]


def language_token_id(family: str, lang: str, tokenizer: Any) -> int | None:
    """The id, in ``tokenizer``, of the token that makes a model of ``family`` generate ``lang`` — what
    ``generate`` passes as ``forced_bos_token_id`` — or None for families that need none.

    A tokenizer that does not know the token (a custom model of the family with another vocabulary) is a
    ``UserInputError``: generating without it would leave the output language to chance.
    """
    token = forced_bos_token(family, lang)
    if token is None:
        return None
    token_id = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(token_id, int) or token_id == getattr(tokenizer, "unk_token_id", None):
        raise UserInputError(
            f"family {family!r}: the tokenizer has no language token {token!r} (for {lang!r}); "
            f"is the model really a {family} model?"
        )
    return token_id


@contextmanager
def input_language(tokenizer: Any, family: str | None, lang: str) -> Iterator[None]:
    """Within the block, ``tokenizer`` marks its inputs as ``lang`` (NLLB and mBART-50 prefix them with
    the language token, through ``src_lang``); restored afterwards. A no-op for the other families."""
    token = None if family is None else forced_bos_token(family, lang)
    if token is None:
        yield
        return
    previous = tokenizer.src_lang
    tokenizer.src_lang = token
    try:
        yield
    finally:
        tokenizer.src_lang = previous


def input_tag(family: str | None, lang: str) -> str:
    """The text put before an input to ask a model of ``family`` for an answer in ``lang``: ``<2sw> ``
    for the tiny family, empty for every other."""
    if family is None or not get_family(family).language_tag:
        return ""
    return TAG_FORMAT.format(lang=lang)


def tagged(family: str, examples: Sequence[Example]) -> list[Example]:
    """``examples`` as a model of ``family`` reads them: each source behind the tag of the example's own
    language (every task answers in the language it is asked in), spans moved along."""
    return [e.with_prefix(input_tag(family, e.lang)) for e in examples]
