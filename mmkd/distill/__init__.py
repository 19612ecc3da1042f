"""Distillation: the MMKD loss terms (``losses``) and the teacher's side (``teacher``, ``cache``).

Nothing here imports Ray: a trial can compute every loss without a cluster. This file also makes
``mmkd.distill`` a regular package, so setuptools' package discovery ships it in wheels.
"""
