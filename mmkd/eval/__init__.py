"""Evaluation: generation, sacrebleu chrF, language identification and the wrong-language rate."""
