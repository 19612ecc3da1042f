"""NLLB and mBART-50 language tokens: each is one the tokenizer knows; a language without one is named."""

import pytest
from transformers.models.mbart50.tokenization_mbart50 import FAIRSEQ_LANGUAGE_CODES as MBART50_TOKENS
from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES as NLLB_TOKENS

from mmkd.data.languages import XTREME_R_LANGUAGES
from mmkd.errors import UserInputError
from mmkd.models import FAMILIES, get_family
from mmkd.models.langcodes import LANG_CODES, MBART50_CODES, NLLB_CODES, forced_bos_token


def test_every_xtreme_r_language_has_an_nllb_token_the_tokenizer_knows():
    assert set(NLLB_CODES) == set(XTREME_R_LANGUAGES)
    assert set(NLLB_CODES.values()) <= set(NLLB_TOKENS)
    assert len(set(NLLB_CODES.values())) == len(NLLB_CODES)


def test_mbart50_tokens_are_the_tokenizers_own_for_every_xtreme_r_language_it_has():
    assert set(MBART50_CODES.values()) <= set(MBART50_TOKENS)
    # mBART-50's codes start with the ISO 639-1 code: the table misses none of its XTREME-R languages.
    covered = {token.split("_")[0] for token in MBART50_TOKENS} & set(XTREME_R_LANGUAGES)
    assert set(MBART50_CODES) == covered
    assert all(code.startswith(f"{lang}_") for lang, code in MBART50_CODES.items())


@pytest.mark.parametrize(
    "family, lang, token",
    [
        ("nllb", "de", "deu_Latn"),
        ("nllb", "sw", "swh_Latn"),
        ("nllb", "zh", "zho_Hans"),
        ("nllb", "en", "eng_Latn"),
        ("mbart50", "de", "de_DE"),
        ("mbart50", "en", "en_XX"),
        ("mbart50", "sw", "sw_KE"),
        ("mt5", "de", None),
        ("byt5", "sw", None),
        ("tiny", "te", None),
    ],
)
def test_forced_bos_token(family, lang, token):
    assert forced_bos_token(family, lang) == token


def test_every_family_that_forces_a_language_token_has_a_table():
    forcing = {name for name in FAMILIES if get_family(name).forced_bos_lang}
    assert forcing == set(LANG_CODES)


def test_a_language_the_family_lacks_or_an_unknown_family_is_a_user_error():
    with pytest.raises(
        UserInputError, match="family 'mbart50' has no language token for 'yo'; its languages: af ar"
    ):
        forced_bos_token("mbart50", "yo")
    for code in ("deu", "deu_Latn"):
        with pytest.raises(
            UserInputError, match=rf"'{code}' \(languages are ISO 639-1 codes: did you mean 'de'"
        ):
            forced_bos_token("nllb", code)
    with pytest.raises(UserInputError, match=r"no language token for 'de_DE' \(.*did you mean 'de'"):
        forced_bos_token("mbart50", "de_DE")
    with pytest.raises(UserInputError, match="unknown model family 'nllb200'"):
        forced_bos_token("nllb200", "de")


class _Vocab:
    """A tokenizer stub: the ids of the tokens it knows, the unknown id for the rest."""

    unk_token_id = 3

    def __init__(self, *known: str) -> None:
        self.ids = {token: 100 + i for i, token in enumerate(known)}

    def convert_tokens_to_ids(self, token):
        return self.ids.get(token, self.unk_token_id)


def test_language_token_id_is_the_tokenizers_id_of_the_familys_code():
    from mmkd.models.langcodes import language_token_id

    vocab = _Vocab("swh_Latn", "sw_KE", "tel_Telu")
    assert language_token_id("nllb", "sw", vocab) == 100
    assert language_token_id("mbart50", "sw", vocab) == 101
    assert language_token_id("nllb", "te", vocab) == 102
    for family in ("mt5", "byt5", "tiny"):
        assert language_token_id(family, "sw", vocab) is None
    with pytest.raises(UserInputError, match="family 'nllb': the tokenizer has no language token 'deu_Latn'"):
        language_token_id("nllb", "de", vocab)


def test_only_the_tiny_family_is_told_its_language_by_a_tag_before_the_input():
    from mmkd.data import Example
    from mmkd.models.langcodes import input_tag, tagged

    assert input_tag("tiny", "sw") == "<2sw> "
    assert input_tag("mt5", "sw") == input_tag("nllb", "sw") == input_tag(None, "sw") == ""
    examples = [Example("a", "te", "x", "y"), Example("b", "en", "z", "w")]
    assert [e.source for e in tagged("tiny", examples)] == ["<2te> x", "<2en> z"]
    assert tagged("byt5", examples) == examples
