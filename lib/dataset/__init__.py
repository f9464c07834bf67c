"""Data: database readers (db), windowing, training/validation datasets, loaders and test-protocol sequences.

Modules: ``db`` (read and check the released ``*_db.pt`` / ``.h5`` files), ``windowing`` (which frames form each
window), ``dataset3d`` / ``dataset2d`` (training and validation samples), ``loaders`` (mixed 2D/3D training
iterator with exact resume, validation loader), ``eval_sequences`` (the test protocol's frames and windows).
Import from the modules themselves; this package imports nothing so that light users stay light.
"""
