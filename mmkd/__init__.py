"""mmkd: distributed hyperparameter sweeps for multilingual knowledge distillation."""

__version__ = "0.1.0"
