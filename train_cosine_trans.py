"""The official training entry point's name: ``python train_cosine_trans.py --cfg ... --gpu 0`` runs exactly
``train.py`` (same options, same training). ``train.py`` is the documented entry point."""
from __future__ import annotations

from lib.core.cli import run_main
from train import main

if __name__ == '__main__':
    run_main(main)
