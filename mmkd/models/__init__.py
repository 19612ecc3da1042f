"""Model families (size ladders with parameter counts), loading by hub id or path, the tiny zoo, peft."""

from mmkd.models.families import FAMILIES, Family, ModelSize, get_family
from mmkd.models.loading import count_params, load_seq2seq, wrap_student

__all__ = [
    "FAMILIES",
    "Family",
    "ModelSize",
    "count_params",
    "get_family",
    "load_seq2seq",
    "wrap_student",
]
