"""GLoT demo: a video in, tracked SMPL meshes, a results file and an overlay video out.

Thin command line over lib/demo/pipeline.py (official flag names kept). Outputs go to
``<output_folder>/<video name>/``: ``glot_output.pkl`` (joblib; person id -> pred_cam, orig_cam, verts, pose,
betas, joints3d, joints2d, bboxes, frame_ids, and beside them trans_cam, focal_length, principal_point,
joints2d_img, and frame_filled: True where the box was interpolated over a tracking gap),
``<video name>_glot_output.mp4``, and with ``--export glb,bvh`` ``<video name>_glot.glb`` and
``bvh/*.bvh``. ``--vid_file`` with a folder of videos or a .txt list runs them all (lib/demo/batch.py, also
under torchrun); ``--stream`` is the online mode (lib/demo/stream.py).
"""
from __future__ import annotations

import argparse
import logging

from lib.core.cli import config_argument_parser, config_from_args, run_main
from lib.demo.batch import run_videos
from lib.demo.pipeline import DemoOptions
from lib.demo.stream import run_stream
from lib.models.checkpoint import stored_architecture

logger = logging.getLogger('lib.demo.cli')

EPILOG = """examples:
  python demo.py --vid_file my_video.mp4 --cfg configs/repr_table1_3dpw.yaml --checkpoint data/pretrained_models/table1_3dpw_weights.pth.tar
  python demo.py --vid_file frames_folder/ --cfg configs/repr_table2_3dpw.yaml --checkpoint data/pretrained_models/table2_3dpw_weights.pth.tar --detector hog --sideview
  python demo.py --vid_file clip.mp4 --cfg configs/repr_table1_3dpw.yaml --bbox_file boxes.csv DEMO.MIN_TRACK_LEN 10 DEVICE cpu
  python demo.py --vid_file videos/ --cfg configs/repr_table1_3dpw.yaml      # every video of a folder (or a .txt list)
  torchrun --nproc_per_node 4 demo.py --vid_file videos/ --cfg configs/repr_table1_3dpw.yaml   # shared over 4 GPUs
  python demo.py --stream 0 --cfg configs/repr_table1_3dpw.yaml               # camera 0, results 8 frames behind
  python demo.py --stream clip.mp4 --realtime --cfg configs/repr_table1_3dpw.yaml   # a file paced as if live
  python demo.py --vid_file clip.mp4 --cfg configs/repr_table1_3dpw.yaml --export glb,bvh DEMO.SMOOTH True

--cfg must describe the checkpoint's architecture (the official YAML it was trained with); our own
checkpoints store it, so --checkpoint alone is enough for them. --checkpoint is
relative to the current folder; without it the config's TRAIN.PRETRAINED is used, under the data root (the
official YAMLs point at pretrained_models/).

--bbox_file format: CSV rows frame,x1,y1,x2,y2[,score][,track_id] (0-based frames, pixels; optional header)
or a JSON list of {"frame", "x1", "y1", "x2", "y2"[, "score"][, "track_id"]} (see lib/demo/detection.py).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = config_argument_parser(__doc__.splitlines()[0], EPILOG)
    parser.add_argument('--cfgs', dest='cfg', metavar='FILE', help='same as --cfg (official spelling)')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--vid_file', help='input video file or folder of frames; or a folder of videos or a .txt '
                        'list of video paths (batch mode: finished videos skipped, torchrun shares them out)')
    source.add_argument('--stream', metavar='SOURCE', help='online mode: a camera index, a URL OpenCV can open or '
                        'a video file read as if live; JSON lines and an overlay video as frames come')
    parser.add_argument('--realtime', action='store_true', help='with --stream FILE: read the file at its own '
                        'frame rate, as a camera delivers frames (frames it cannot keep up with are skipped)')
    parser.add_argument('--output_folder', default='demo_output', help='results go to OUTPUT_FOLDER/<video name>/')
    parser.add_argument('--checkpoint', help='GLoT weights (default: TRAIN.PRETRAINED of the config)')
    parser.add_argument('--detector', choices=('auto', 'torchvision', 'hog'),
                        help='person detector, DEMO.DETECTOR (default auto = torchvision if its weights are on '
                             'disk, else HOG)')
    parser.add_argument('--bbox_file', help='per-frame person boxes (CSV or JSON) instead of a detector; in '
                        'batch mode a folder of <video name>.csv/.json')
    parser.add_argument('--tracker_batch_size', type=int, help='frames per detector batch, '
                        'DEMO.TRACKER_BATCH_SIZE (default 12)')
    parser.add_argument('--fps', type=float, help="frame rate of the input in frames/s (default DEMO.FPS: the "
                        "video's own, 30 for a folder of frames); used for the output video and exports")
    parser.add_argument('--yolo_img_size', type=int, help='official flag; ignored (no YOLO detector here)')
    parser.add_argument('--display', action='store_true', help='official flag; ignored (headless)')
    parser.add_argument('--save_pkl', action=argparse.BooleanOptionalAction, default=True,
                        help='write glot_output.pkl (default on; --no-save_pkl to skip)')
    parser.add_argument('--save_obj', action='store_true', help='write per-frame .obj meshes')
    parser.add_argument('--sideview', action='store_true', help='add a side view next to each frame '
                        '(DEMO.SIDEVIEW True)')
    parser.add_argument('--render_plain', action='store_true', help='render on a black background with a '
                        'centred camera (official behaviour; DEMO.RENDER_PLAIN True)')
    parser.add_argument('--wireframe', action='store_true', help='draw the visible mesh edges only '
                        '(DEMO.WIREFRAME True)')
    parser.add_argument('--gender', choices=('neutral', 'male', 'female'),
                        help='SMPL body of the output meshes, DEMO.GENDER (default neutral)')
    parser.add_argument('--no_render', action='store_true', help='skip the overlay video')
    parser.add_argument('--export', metavar='FORMATS',
                        help='also write the motion: glb (skinned animated meshes, all people in one file), bvh '
                             '(skeleton animation, one file per person and run of tracked frames), or glb,bvh '
                             '(DEMO.EXPORT)')
    return parser


# Flags that set a config key (the official flag names): flag -> key. A switch sets its key to True.
FLAG_KEYS = {'fps': 'DEMO.FPS', 'detector': 'DEMO.DETECTOR',
             'tracker_batch_size': 'DEMO.TRACKER_BATCH_SIZE', 'gender': 'DEMO.GENDER', 'export': 'DEMO.EXPORT',
             'sideview': 'DEMO.SIDEVIEW', 'render_plain': 'DEMO.RENDER_PLAIN', 'wireframe': 'DEMO.WIREFRAME'}


def settings_from_flags(args: argparse.Namespace) -> list[str]:
    """``KEY VALUE`` overrides of the flags given (:data:`FLAG_KEYS`), merged after the trailing ones."""
    opts = []
    for flag, key in FLAG_KEYS.items():
        value = getattr(args, flag)
        if value is None or value is False:
            continue
        if flag == 'export':
            value = str([f for f in value.split(',') if f])
        opts += [key, str(value)]
    return opts


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args, settings_from_flags(args), base_opts=stored_architecture(args.cfg, args.checkpoint))
    if args.display:
        logger.info('note: --display is ignored (this demo is headless; open the output video instead)')
    if args.yolo_img_size is not None:
        logger.info('note: --yolo_img_size is ignored (no YOLO detector here; see --detector)')
    options = DemoOptions(bbox_file=args.bbox_file, save_pkl=args.save_pkl, save_obj=args.save_obj,
                          render=not args.no_render)
    if args.stream is not None:
        run_stream(cfg, args.stream, args.output_folder, options, checkpoint=args.checkpoint, realtime=args.realtime)
    else:
        run_videos(cfg, args.vid_file, args.output_folder, options, checkpoint=args.checkpoint)


if __name__ == '__main__':
    run_main(main)
