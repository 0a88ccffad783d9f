"""Task adapters: what GLUE and SQuAD each bring to the one distillation run
(:mod:`paddle_binbert.distill.pipeline`): head, features and collator, evaluation (metric or span
post-processing), flag checks and defaults, ``results.json`` entries.

* :mod:`.base`: :class:`~paddle_binbert.tasks.base.DistillTask`, the adapter interface;
* :mod:`.glue`: :class:`~paddle_binbert.tasks.glue.GlueTask` (sequence classification / regression);
* :mod:`.squad`: :class:`~paddle_binbert.tasks.squad.SquadTask` (extractive QA, SQuAD v1.1).
"""
