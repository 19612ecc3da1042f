"""Language lists and the resource classes that define the low-resource group.

XTREME-R (Ruder et al., 2021, arXiv 2104.07412) covers 50 languages; these are their ISO 639-1 codes.

``RESOURCE_CLASS`` is the taxonomy of Joshi et al. (2020), "The State and Fate of Linguistic Diversity
and Inclusion in the NLP World" (ACL, https://microsoft.github.io/linguisticdiversity/assets/lang2tax.txt):
0 "left-behinds" … 5 "winners", by how much labelled and unlabelled data a language has. A task's
low-resource group is its languages of class ``LOW_RESOURCE_MAX_CLASS`` or below (classes 0–2), one
published rule rather than a hand-picked list.
"""

from mmkd import names

XTREME_R_LANGUAGES: tuple[str, ...] = tuple(
    "af ar az bg bn de el en es et eu fa fi fr gu he hi ht hu id it ja jv ka kk ko lt ml mr ms my nl "
    "pa pl pt qu ro ru sw ta te th tl tr uk ur vi wo yo zh".split()
)

RESOURCE_CLASS: dict[str, int] = {
    **dict.fromkeys("ar de en es fr ja zh".split(), 5),
    **dict.fromkeys("eu fa fi hi hu it ko nl pl pt ru tr vi".split(), 4),
    **dict.fromkeys("af bg bn el et he id ka kk lt ms ro ta th tl uk ur".split(), 3),
    **dict.fromkeys("ht mr pa sw wo yo".split(), 2),
    **dict.fromkeys("az gu jv ml my qu te".split(), 1),
}

LOW_RESOURCE_MAX_CLASS = 2
LOW_RESOURCE_NAME = names.LOW_RESOURCE  # the group of classes 0-2 in metric names: eval/low_resource/...


def is_low_resource(lang: str) -> bool:
    return RESOURCE_CLASS[lang] <= LOW_RESOURCE_MAX_CLASS
