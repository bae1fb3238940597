"""The CLI's commands, one module each, imported lazily by :class:`pipelines.cli.LazyGroup`.

Every command imports torch, numpy and the pipelines inside its function, not at the top of its module: click imports a
command before the group's callback applies the thread policy (:mod:`vidanime.threads`), which must come before torch
loads OpenMP; and ``vidanime --help`` stays fast.
"""
