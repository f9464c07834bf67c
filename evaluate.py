"""Evaluate a GLoT checkpoint on 3DPW, Human3.6M or MPI-INF-3DHP with the official test protocol.

Prints PA-MPJPE, MPJPE, MPVPE (3DPW) and acceleration error in mm for two frame orders: 'official' (the
released evaluate.py, which reproduces the paper's tables) and 'corrected'. Writes results.json,
per_sequence.csv, per_frame.npz and eval_info.json into the output directory. The protocol lives in
lib/eval/protocol.py, the run in lib/eval/run.py. The released script's options --gpu, --seq, --filter,
--plot, --render, --render_plain and --frame work as there.
"""
from __future__ import annotations

from lib.core.cli import cli_path, config_argument_parser, config_from_args, run_main
from lib.eval.protocol import EVAL_SETS
from lib.eval.run import EvalOptions, eval_set_spec, run_evaluation
from lib.models.checkpoint import stored_architecture

EPILOG = """examples:
  python evaluate.py --cfg configs/repr_table1_3dpw.yaml --dataset 3dpw
  python evaluate.py --cfg configs/repr_table1_h36m_mpii3d.yaml --dataset h36m
  python evaluate.py --cfg configs/repr_table1_h36m_mpii3d.yaml --dataset mpii3d --checkpoint my.pth.tar
  python evaluate.py --dataset 3dpw --checkpoint results/my_run/model_best.pth.tar   # ours: no --cfg needed
  python evaluate.py --cfg configs/repr_table1_3dpw.yaml --dataset 3dpw --data-root /data/glot \\
      DEVICE cuda EVAL.BATCH_SIZE 512 EVAL.GENDERED_MPVPE True
  python evaluate.py --dataset 3dpw --cfg ./configs/repr_table1_3dpw.yaml --gpu 0 --filter --plot --seq downtown
  python evaluate.py --dataset 3dpw --cfg ./configs/repr_table1_3dpw.yaml --gpu 0 --render_plain --frame 100
"""


def main(argv=None) -> None:
    parser = config_argument_parser(__doc__.splitlines()[0], EPILOG)
    parser.add_argument('--dataset', required=True, metavar='NAME', help=f"test set: {', '.join(EVAL_SETS)}")
    parser.add_argument('--checkpoint', metavar='PATH', help='GLoT checkpoint (overrides TRAIN.PRETRAINED)')
    parser.add_argument('--data-root', metavar='DIR', help='data root (overrides DATA_ROOT)')
    parser.add_argument('--output_dir', metavar='DIR',
                        help='where results go (default OUTPUT_DIR/EXP_NAME/eval_<dataset>)')
    parser.add_argument('--render', action='store_true',
                        help='also draw the predicted meshes on the dataset frames (needs the images)')
    parser.add_argument('--render_plain', action='store_true',
                        help='draw the meshes on a black background, body centred (implies --render)')
    parser.add_argument('--frame', type=int, default=0, metavar='K',
                        help='render from frame number K on (the number in the image file names; default 0)')
    parser.add_argument('--seq', default='', metavar='NAME',
                        help='evaluate (and render) only the sequences whose name contains NAME')
    parser.add_argument('--filter', action='store_true',
                        help="smooth the predicted rotations with the official slerp filter (MEVA's, ratio 0.3)")
    parser.add_argument('--plot', action='store_true',
                        help='write per-sequence acceleration-error plots (PNG) and their values (CSV) to plot/')
    args = parser.parse_args(argv)
    eval_set_spec(args.dataset)
    extra = []
    if args.checkpoint:
        extra += ['TRAIN.PRETRAINED', cli_path(args.checkpoint)]
    if args.data_root:
        extra += ['DATA_ROOT', cli_path(args.data_root)]
    cfg = config_from_args(args, extra, base_opts=stored_architecture(args.cfg, args.checkpoint))
    options = EvalOptions(seq=args.seq, slerp_filter=args.filter, plot=args.plot, render=args.render,
                          render_plain=args.render_plain, frame=args.frame)
    run_evaluation(cfg, args.dataset, output_dir=args.output_dir, render=args.render, cfg_file=args.cfg,
                   options=options)


if __name__ == '__main__':
    run_main(main)
