"""Train GLoT with the official recipe (lib/train/launch.py sets the run up, lib/train/loop.py trains)."""
from __future__ import annotations

import logging
import sys

from lib.core.cli import config_argument_parser, config_from_args, run_main
from lib.train.launch import output_dir, train
from lib.train.loop import BEST_CHECKPOINT, CHECKPOINT

logger = logging.getLogger('lib.train.cli')

EPILOG = """examples:
  python train.py --cfg configs/repr_table1_3dpw.yaml
  python train.py --cfg configs/synthetic.yaml DATA_ROOT /tmp/glot_synthetic      # quick start, CPU
  python train.py --cfg configs/repr_table1_3dpw.yaml --resume                     # continue this run
  python train.py --cfg configs/repr_table1_3dpw.yaml TRAIN.RESUME results/x/checkpoint.pth.tar
  torchrun --nproc_per_node 4 train.py --cfg configs/repr_table1_3dpw.yaml         # 4 GPUs, same global batch
  python train_cosine_trans.py --cfg ./configs/repr_table1_3dpw.yaml --gpu 0        # the official command

Writes OUTPUT_DIR/EXP_NAME/: config.yaml, log.txt, TensorBoard events, checkpoint.pth.tar (every epoch),
model_best.pth.tar (lowest validation PA-MPJPE). Ctrl-C or SIGTERM: the current step finishes, a checkpoint
is written, and the run exits with status 128 + signal number; --resume continues it exactly. The last line
names the weights as an absolute path, which works as TRAIN.PRETRAINED in any config.
"""


def main(argv=None) -> None:
    parser = config_argument_parser('Train GLoT on the configured datasets.', EPILOG)
    parser.add_argument('--resume', action='store_true',
                        help="continue the run in OUTPUT_DIR/EXP_NAME (its checkpoint.pth.tar must exist); with "
                             "TRAIN.RESUME PATH, continue from that file instead")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    if args.resume and cfg.TRAIN.RESUME in ('', 'auto'):
        cfg = config_from_args(args, ['TRAIN.RESUME', 'auto'])
    result = train(cfg, require_resume=args.resume)
    if result['stop_signal'] is not None:
        sys.exit(128 + result['stop_signal'])
    run = output_dir(cfg).absolute()
    weights = run / BEST_CHECKPOINT if (run / BEST_CHECKPOINT).is_file() else run / CHECKPOINT
    if weights.is_file():
        logger.info('for evaluate.py and demo.py: TRAIN.PRETRAINED %s', weights)


if __name__ == '__main__':
    run_main(main)
