"""Language lists.

XTREME-R (Ruder et al., 2021, arXiv 2104.07412) covers 50 languages; these are their ISO 639-1 codes.
"""

XTREME_R_LANGUAGES: tuple[str, ...] = tuple(
    "af ar az bg bn de el en es et eu fa fi fr gu he hi ht hu id it ja jv ka kk ko lt ml mr ms my nl "
    "pa pl pt qu ro ru sw ta te th tl tr uk ur vi wo yo zh".split()
)
