"""Importers for public checkpoint layouts (rosinality StyleGAN2, official StyleAnime, pSp/e4e, BiSeNet, ...).

Each importer reads a file with ``weights_only=True``, checks its keys and shapes against our modules (whose parameter
names match the public ones, so loading is a plain ``load_state_dict``) and raises a one-line
:class:`~vidanime.errors.CheckpointError` naming what is missing or unexpected.
"""
