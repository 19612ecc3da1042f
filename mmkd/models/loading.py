"""Load a seq2seq model by hub id or local path, and make a student of it (peft LoRA or full finetuning)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmkd.errors import UserInputError

if TYPE_CHECKING:  # torch loads in seconds; `mmkd sweep validate` imports this package without it
    import torch


def load_seq2seq(source: str | Path, dtype: torch.dtype | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) from a local directory or a hub id, with one clear error when it is missing.

    Offline (``HF_HUB_OFFLINE=1``, or no network) a hub id that is not in the local cache raises
    ``UserInputError`` saying what is missing and how to give a local path, never a traceback or a hang.
    """
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    # Trials load several models each; a progress bar per load buries the sweep's own output.
    hf_logging.disable_progress_bar()
    src = str(source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(src)
        model = AutoModelForSeq2SeqLM.from_pretrained(src, dtype=dtype)
    except OSError as e:
        where = (
            "directory"
            if Path(src).exists()
            else "hub id (not in the local cache, and the hub is unreachable)"
        )
        raise UserInputError(
            f"cannot load model {src!r}: {where}; download it on a machine with the hub "
            f"(`huggingface-cli download {src}`) and give its local path instead ({type(e).__name__})"
        ) from None
    return model, tokenizer


def count_params(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def wrap_student(model: Any, rank: int, targets: tuple[str, ...], alpha: int | None = None) -> Any:
    """A peft LoRA adapter of ``rank`` on ``targets`` (base frozen), or the model itself when rank is 0."""
    if rank < 0:
        raise UserInputError(f"adapter_rank: must be >= 0 (got {rank})")
    if rank == 0:
        model.requires_grad_(True)
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType.SEQ_2_SEQ_LM,
        r=rank,
        lora_alpha=alpha if alpha is not None else 2 * rank,
        target_modules=list(targets),
        lora_dropout=0.0,
    )
    return get_peft_model(model, config)
