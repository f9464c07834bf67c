"""The one defaults file: every key the official YAMLs use (same spellings, lowercase ones included), plus ours.

Load a config with :func:`load_config` (``--cfg`` file, then ``KEY VALUE`` overrides); the result is frozen and
unknown keys fail at start-up. Paths:

- ``DATA_ROOT`` is the root of every data file. Empty means ``$GLOT_DATA_ROOT`` if set, else ``data/`` in this
  repository.
- A data-file path in a config (``SMPL.*``, ``TRAIN.PRETRAINED*``, ``DATASET.*`` files and folders), in a YAML
  or as a ``KEY VALUE`` override, is relative to ``DATA_ROOT``, unless it starts with ``./`` or ``../``: then it
  is relative to the current folder, as the official code reads it; absolute paths stay as they are
  (:func:`resolve_path`). So this repository's YAMLs (``pretrained_models/...``) follow a moved data root, and
  an official YAML (``./data/pretrained_models/...``) works from the repository root with the data in
  ``./data``. A missing file that exists under the other reading is named with it (:func:`other_reading`).
- A path typed as a command-line option (``--checkpoint``, ``--data-root``, ``--vid_file``, ...) is relative
  to the current folder (:func:`lib.core.cli.cli_path`). So are ``DATA_ROOT`` itself and the run folders
  ``OUTPUT_DIR``, ``LOGDIR`` and ``TRAIN.RESUME``.

Replicated official quirks each have one named key whose default reproduces the official weights and
numbers: ``MODEL.HSCR_OFFICIAL_POSE_SLICE``, ``MODEL.KEEP_UNUSED_WEIGHTS``, ``LOSS.GLOBAL_VEL3D_UNMASKED``
and ``EVAL.PROTOCOLS`` (official reversed back-padding vs corrected order).
"""
from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import torch
import yaml
from yacs.config import CfgNode as CN

from lib.core.checks import check_config, config_differences, config_value
from lib.core.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_ROOT_ENV = 'GLOT_DATA_ROOT'
# Config paths starting with these are relative to the current folder (the official YAMLs' './data/...').
CWD_PREFIXES = ('./', '../', '.' + os.sep, '..' + os.sep)
logger = logging.getLogger(__name__)

_C = CN()

# ---------------------------------------------------------------------------------------------------------
# General
# ---------------------------------------------------------------------------------------------------------
# Run label. The official code chose the training files and the Human3.6M SMPL supervision by comparing it with
# fixed strings; here those are the explicit DATASET.FILES / DATASET.H36M_USE_SMPL keys. A YAML that sets one
# of the three official TITLEs but not those keys (an official YAML as users keep it) gets the official choice
# (OFFICIAL_TITLES below); otherwise TITLE only labels the run.
_C.TITLE = 'default'
# Experiments are written to OUTPUT_DIR/EXP_NAME (relative to the working directory).
_C.OUTPUT_DIR = 'results'
_C.EXP_NAME = 'default'
# 'auto' (CUDA when available, else CPU), or any torch device string: 'cpu', 'cuda', 'cuda:1', 'mps'. 'cuda'
# (the official YAMLs' value) on a machine without CUDA runs on the CPU, with one log line. The official
# --gpu N flag of the scripts picks GPU N for 'auto' and 'cuda' (lib/core/cli.py gpu_device).
_C.DEVICE = 'auto'
# Official debug switches (debug visualisation is not part of this repository; kept so the YAMLs load).
_C.DEBUG = True
_C.DEBUG_FREQ = 1000
# Extra log directory; empty means OUTPUT_DIR/EXP_NAME.
_C.LOGDIR = ''
# DataLoader worker processes (capped at the CPUs available to the process).
_C.NUM_WORKERS = 8
# Seed for python, numpy and torch; -1 leaves the generators unseeded.
_C.SEED_VALUE = -1
# Official evaluate.py rendering switch (evaluate.py --render sets it).
_C.render = False
# Root of all data files (see module docstring); empty means $GLOT_DATA_ROOT or <repo>/data.
_C.DATA_ROOT = ''

_C.CUDNN = CN()
_C.CUDNN.BENCHMARK = True
_C.CUDNN.DETERMINISTIC = False
_C.CUDNN.ENABLED = True

# ---------------------------------------------------------------------------------------------------------
# Body model assets (paths under DATA_ROOT unless absolute; README "Real data" lists their sources)
# ---------------------------------------------------------------------------------------------------------
_C.SMPL = CN()
# Folder with SMPL_NEUTRAL.pkl, SMPL_MALE.pkl, SMPL_FEMALE.pkl (v1.0.0 10-beta or v1.1.0 300-beta files).
_C.SMPL.MODEL_DIR = 'base_data'
# SPIN mean pose (144, 6D), shape (10) and camera (3).
_C.SMPL.MEAN_PARAMS = 'base_data/smpl_mean_params.npz'
# 9 x 6890 regressor for the extra SPIN joints.
_C.SMPL.J_REGRESSOR_EXTRA = 'base_data/J_regressor_extra.npy'
# 17 x 6890 Human3.6M regressor used for evaluation joints.
_C.SMPL.J_REGRESSOR_H36M = 'base_data/J_regressor_h36m.npy'

# ---------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------
_C.TRAIN = CN()
# Dataset names: 2D from {Insta}, 3D from {ThreeDPW, MPII3D, Human36M}; files come from DATASET.FILES.
_C.TRAIN.DATASETS_2D = ['Insta']
_C.TRAIN.DATASETS_3D = ['MPII3D']
# Validation dataset (its DATASET.FILES.<name>.VAL file) used for model selection.
_C.TRAIN.DATASET_EVAL = 'ThreeDPW'
# Clips per iteration (2D + 3D together).
_C.TRAIN.BATCH_SIZE = 32
# Overlap of training windows: stride = int(SEQLEN * (1 - OVERLAP) + 0.5).
_C.TRAIN.OVERLAP = 0.25
# Fraction of the batch taken from 2D datasets: int(BATCH_SIZE * DATA_2D_RATIO) clips.
_C.TRAIN.DATA_2D_RATIO = 0.5
_C.TRAIN.START_EPOCH = 0
_C.TRAIN.END_EPOCH = 5
# SPIN checkpoint that initialises the global regressor when training starts from scratch.
_C.TRAIN.PRETRAINED_REGRESSOR = 'base_data/spin_model_checkpoint.pth.tar'
# GLoT weights evaluated by evaluate.py and used by demo.py (training never loads it); --checkpoint overrides it.
_C.TRAIN.PRETRAINED = ''
# Checkpoint to resume from (model, optimizer, scheduler, epoch, RNG states); 'auto' = OUTPUT_DIR/EXP_NAME/checkpoint.pth.tar if present.
_C.TRAIN.RESUME = ''
_C.TRAIN.NUM_ITERS_PER_EPOCH = 1000
# Warm-up epochs of the cosine schedule (official name).
_C.TRAIN.LR_PATIENCE = 5
# First epoch (1-based) whose validation metrics are computed and used for model selection.
_C.TRAIN.val_epoch = 5
_C.TRAIN.GEN_OPTIM = 'Adam'
# Peak learning rate, and the floor of the warm-up + cosine schedule.
_C.TRAIN.GEN_LR = 1e-4
_C.TRAIN.GEN_MIN_LR = 1e-5
_C.TRAIN.GEN_WD = 1e-4
_C.TRAIN.GEN_MOMENTUM = 0.9
# Mixed precision: 'none', 'bf16' or 'fp16' (CUDA only; off in the official recipe).
_C.TRAIN.AMP = 'none'
# Wrap the model in torch.compile (off in the official recipe).
_C.TRAIN.COMPILE = False
# Validation batch size (windows).
_C.TRAIN.VAL_BATCH_SIZE = 256
# Also validate the initial weights before the first epoch (logged as epoch 0; not done when resuming).
_C.TRAIN.VAL_AT_START = False
# Steps between progress lines (loss, lr, it/s, time left) in the log when the console is not a terminal
# (a tqdm bar shows the progress on a terminal); 0 = none.
_C.TRAIN.LOG_EVERY = 100

# Motion discriminator: built but never used by the official trainer (weight 0). Kept so the YAMLs load.
_C.TRAIN.MOT_DISCR = CN()
_C.TRAIN.MOT_DISCR.OPTIM = 'SGD'
_C.TRAIN.MOT_DISCR.LR = 1e-2
_C.TRAIN.MOT_DISCR.WD = 1e-4
_C.TRAIN.MOT_DISCR.MOMENTUM = 0.9
_C.TRAIN.MOT_DISCR.UPDATE_STEPS = 1
_C.TRAIN.MOT_DISCR.FEATURE_POOL = 'concat'
_C.TRAIN.MOT_DISCR.HIDDEN_SIZE = 1024
_C.TRAIN.MOT_DISCR.NUM_LAYERS = 1
_C.TRAIN.MOT_DISCR.ATT = CN()
_C.TRAIN.MOT_DISCR.ATT.SIZE = 1024
_C.TRAIN.MOT_DISCR.ATT.LAYERS = 1
_C.TRAIN.MOT_DISCR.ATT.DROPOUT = 0.1

# ---------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------
_C.DATASET = CN()
# Window length in frames: 16 in the paper and every official YAML (the official config.py default is 20).
_C.DATASET.SEQLEN = 16
# Unused by the official code (TRAIN.OVERLAP is the one that counts).
_C.DATASET.OVERLAP = 0.5
# Folder of the preprocessed *_db.pt / *.h5 databases.
_C.DATASET.DB_DIR = 'preprocessed_data'
# Folder of the raw 3DPW release (imageFiles/, sequenceFiles/); needed for rendering and preprocessing.
_C.DATASET.THREEDPW_DIR = '3dpw'
# Database file of each dataset and split, in DATASET.DB_DIR. The official TITLEs select the *_occ_* train
# files for Table 1 (3DPW; all three) and Table 2 (MPI-INF-3DHP and Human3.6M; plain 3DPW), the plain ones for
# Table 1 (Human3.6M / MPI-INF-3DHP); configs/ writes each choice out.
_C.DATASET.FILES = CN()
_C.DATASET.FILES.ThreeDPW = CN()
_C.DATASET.FILES.ThreeDPW.TRAIN = '3dpw_train_db.pt'
_C.DATASET.FILES.ThreeDPW.VAL = '3dpw_val_db.pt'
_C.DATASET.FILES.ThreeDPW.TEST = '3dpw_test_db.pt'
_C.DATASET.FILES.MPII3D = CN()
_C.DATASET.FILES.MPII3D.TRAIN = 'mpii3d_train_scale12_db.pt'
_C.DATASET.FILES.MPII3D.VAL = 'mpii3d_val_scale12_db.pt'
# The MPI-INF-3DHP *test* set (TS1-TS6) is released as the "val" file.
_C.DATASET.FILES.MPII3D.TEST = 'mpii3d_val_scale12_db.pt'
_C.DATASET.FILES.Human36M = CN()
_C.DATASET.FILES.Human36M.TRAIN = 'h36m_train_25fps_db.pt'
_C.DATASET.FILES.Human36M.TEST = 'h36m_test_25fps_db.pt'
_C.DATASET.FILES.Insta = CN()
_C.DATASET.FILES.Insta.TRAIN = 'insta_train_db.h5'
# Supervise SMPL pose/shape on Human3.6M (TCMR's NeuralAnnot pseudo-GT). Official: off only for the
# Table 1 3DPW model.
_C.DATASET.H36M_USE_SMPL = True

# ---------------------------------------------------------------------------------------------------------
# Loss weights (official names)
# ---------------------------------------------------------------------------------------------------------
_C.LOSS = CN()
_C.LOSS.KP_2D_W = 60.0
_C.LOSS.KP_3D_W = 30.0
_C.LOSS.SHAPE_W = 0.001
_C.LOSS.POSE_W = 1.0
# Motion discriminator weight: unused (official value 0).
_C.LOSS.D_MOTION_LOSS_W = 1.0
_C.LOSS.vel_or_accel_2d_weight = 50.0
_C.LOSS.vel_or_accel_3d_weight = 100.0
# True: acceleration losses; False: velocity losses (all official YAMLs).
_C.LOSS.use_accel = True
# Official quirk: the global branch's vel-3D loss is not restricted to masked frames (a legacy
# MSELoss argument makes it the plain mean scaled by the masked fraction). False applies the mask.
_C.LOSS.GLOBAL_VEL3D_UNMASKED = True

# ---------------------------------------------------------------------------------------------------------
# Model (official lowercase names)
# ---------------------------------------------------------------------------------------------------------
_C.MODEL = CN()
# The defaults are the paper's architecture: the MODEL block of all three official YAMLs (configs/), which
# GLoT.__init__ also defaults to. The official config.py's own defaults differ (d_model 1024, n_layers 1,
# dropout 0, drop_path_r 0, mask_ratio 0, short_d_model 512, drop_reg_short 0.5), but every official YAML
# overrides them, so no released model uses them.
_C.MODEL.MODEL_NAME = 'GLoT'
# Global transformer: heads, dropout, stochastic depth, width, encoder depth, attention dropout, and the
# fraction of the T frames replaced by the mask token during training (masked pose-and-shape estimation).
_C.MODEL.num_head = 8
_C.MODEL.dropout = 0.1
_C.MODEL.drop_path_r = 0.2
_C.MODEL.d_model = 512
_C.MODEL.n_layers = 2
_C.MODEL.atten_drop = 0.0
_C.MODEL.mask_ratio = 0.5
# Local transformer: depth, width (HSCR expects 256), heads, dropout, stochastic depth, attention dropout.
_C.MODEL.short_n_layers = 3
_C.MODEL.short_d_model = 256
_C.MODEL.short_num_head = 8
_C.MODEL.short_dropout = 0.1
_C.MODEL.short_drop_path_r = 0.2
_C.MODEL.short_atten_drop = 0.0
# Half-width of the local window (2 * stride_short + 1 frames around the middle frame).
_C.MODEL.stride_short = 4
# HSCR dropout.
_C.MODEL.drop_reg_short = 0.25
# Official quirk: KTD head j reads pose0[j:j+6] instead of its own 6D block pose0[6j:6j+6]. Needed for
# the official weights; False gives the paper's intent (new training only).
_C.MODEL.HSCR_OFFICIAL_POSE_SLICE = True
# Keep the unused official weights (global regressor fc2, KTD decshape/deccam) so official checkpoints
# load strictly. False drops them (the loader then skips those checkpoint keys).
_C.MODEL.KEEP_UNUSED_WEIGHTS = True

# ---------------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------------
_C.EVAL = CN()
# Windows per forward pass.
_C.EVAL.BATCH_SIZE = 256
# Protocols reported: 'official' appends the last 7 back-padding windows in reverse order, as the released
# evaluate.py does (reproduces the paper's table); 'corrected' keeps natural frame order.
_C.EVAL.PROTOCOLS = ['official', 'corrected']
# Also report 3DPW MPVPE against gendered ground-truth SMPL (needs SMPL_MALE/FEMALE.pkl and the raw
# 3DPW sequence files for the genders).
_C.EVAL.GENDERED_MPVPE = False
# evaluate.py --render: frames drawn per sequence, from its first frame (official 200; 0 = all), and the
# rasteriser of lib/vis/renderer.py ('painter' is faster on full-size frames, 'zbuffer' exact).
_C.EVAL.RENDER_FRAMES = 200
_C.EVAL.RENDER_MODE = 'painter'

# ---------------------------------------------------------------------------------------------------------
# Demo
# ---------------------------------------------------------------------------------------------------------
_C.DEMO = CN()
# Person detector: 'auto' (torchvision if its weights are local, else HOG), 'torchvision' or 'hog' (demo.py
# --detector sets it).
_C.DEMO.DETECTOR = 'auto'
# Frames per detector batch (demo.py --tracker_batch_size, the official flag).
_C.DEMO.TRACKER_BATCH_SIZE = 12
# SMPL body of the output meshes, joints and exports: 'neutral', 'male' or 'female' (demo.py --gender); the
# model itself always predicts with the neutral body, as the official demo.
_C.DEMO.GENDER = 'neutral'
# Motion files written beside the results: any of 'glb' (skinned animated meshes, all people in one file) and
# 'bvh' (skeleton animation per person); demo.py --export glb,bvh sets it.
_C.DEMO.EXPORT = []
# Overlay video: a side view of the meshes right of each frame (--sideview), the meshes on black with the
# crop camera (1, 0, 0) as the official --render_plain (--render_plain), visible edges only (--wireframe).
_C.DEMO.SIDEVIEW = False
_C.DEMO.RENDER_PLAIN = False
_C.DEMO.WIREFRAME = False
# Frame rate of the input (frames/s), used for the output video, the exports and the log: 0 = the video's
# own rate, or 30 for a folder of frames (demo.py --fps sets it).
_C.DEMO.FPS = 0.0
# Tracks shorter than this many frames are dropped (official MIN_NUM_FRAMES).
_C.DEMO.MIN_TRACK_LEN = 25
# Crop scale around the square person box (official 1.2).
_C.DEMO.BBOX_SCALE = 1.2
# Crops per SPIN feature batch (bounds the feature stage's memory: ~12 MB per crop on the CPU, so 32 -> ~0.4 GB;
# CPU speed is flat from ~16 up) and windows per GLoT batch.
_C.DEMO.FEATURE_BATCH_SIZE = 32
_C.DEMO.MODEL_BATCH_SIZE = 64
# torchvision COCO detector used by DETECTOR 'torchvision'/'auto' (see lib/demo/detection.py for the choices).
_C.DEMO.TORCHVISION_MODEL = 'fasterrcnn_resnet50_fpn_v2'
# Its weights file; empty means the torch hub cache ($TORCH_HOME/hub/checkpoints).
_C.DEMO.DETECTOR_WEIGHTS = ''
# Download those weights with torchvision when they are missing (needs internet; off: never download).
_C.DEMO.DOWNLOAD_WEIGHTS = False
# Minimum person score of the torchvision detector (the official YOLOv3 threshold).
_C.DEMO.DETECTION_THRESHOLD = 0.7
# HOG detector: minimum SVM margin of a window, and the height (pixels of the original frame) of the
# smallest person searched for; frames are scaled by 96 / HOG_MIN_HEIGHT (time grows with the square).
_C.DEMO.HOG_HIT_THRESHOLD = 0.0
_C.DEMO.HOG_MIN_HEIGHT = 50
# HOG image pyramid step: each level is this factor smaller (OpenCV's default 1.05; 1.1 is ~1.7x faster but
# skips some sizes, e.g. people filling the frame height).
_C.DEMO.HOG_PYRAMID_SCALE = 1.05
# Detectors merge a box into a better-scored one when this fraction of the smaller box lies inside the other
# (duplicate boxes on one person); 1.0 merges only boxes entirely inside another.
_C.DEMO.DUPLICATE_OVERLAP = 0.8
# Tracker (SORT with a Kalman motion model): minimum IoU of a match with the predicted box, frames a track
# survives without a detection (about half a second at 30 fps), detections before a track counts.
_C.DEMO.TRACK_IOU_THRESHOLD = 0.3
_C.DEMO.TRACK_MAX_AGE = 15
_C.DEMO.TRACK_MIN_HITS = 3
# Colour cue of the tracker (HSV histograms of the boxes): on/off, weight of the colour similarity (0..1)
# added to the IoU, and the minimum similarity of a match (also used to re-find a person after a gap).
_C.DEMO.TRACK_APPEARANCE = True
_C.DEMO.TRACK_APPEARANCE_WEIGHT = 1.0
_C.DEMO.TRACK_APPEARANCE_MIN = 0.7
# Fill the frames a track skipped by interpolating its box, so each track's windows are contiguous in time;
# the filled frames are marked in the results (frame_filled).
_C.DEMO.FILL_GAPS = True
# A track whose box centre stays within STATIC_TRACK_MOTION box heights of its median position for at least
# STATIC_TRACK_FRACTION of its frames is static (a door, a poster); it is reported, and dropped if
# DROP_STATIC_TRACKS. STATIC_TRACK_MOTION 0 turns the check off.
_C.DEMO.STATIC_TRACK_MOTION = 0.1
_C.DEMO.STATIC_TRACK_FRACTION = 0.9
_C.DEMO.DROP_STATIC_TRACKS = False
# Gaussian smoothing of the square track boxes over time, in frames (0 = none, as the official tracker).
_C.DEMO.BBOX_SMOOTH_SIGMA = 1.0
# Windows of the first 8 / last 7 frames of a track: 'clamp' indexes the track with indices clamped to its
# ends; 'repeat' repeats the target frame's feature 16 times (the official FeatureDataset).
_C.DEMO.WINDOW_PADDING = 'clamp'
# Renderer: 'zbuffer' (per-pixel depth, smooth shading) or 'painter' (faces sorted by depth, flat shading,
# faster); opacity of the mesh over the frame (1 = opaque, as the official renderer).
_C.DEMO.RENDER_MODE = 'zbuffer'
_C.DEMO.RENDER_ALPHA = 1.0
# Reuse detections and features cached in the output folder when the video and settings are unchanged.
_C.DEMO.CACHE = True
# Batch mode under torchrun: minutes a process waits for the others to finish their share of the videos
# before rank 0 writes the summary (the gloo process group's timeout).
_C.DEMO.BATCH_TIMEOUT_MIN = 1440.0
# Online mode (--stream): also write each person's 6890 x 3 vertices (metres) in its JSON line (about 400 kB
# a line; without them a line holds the cameras, pose, shape, box and 3D joints).
_C.DEMO.STREAM_VERTS = False
# Speed (issue 20). Precision of the SPIN ResNet-50 feature stage: 'float32' (default, outputs unchanged) or
# 'bfloat16' (autocast; fast only on CPUs with AVX512-BF16/AMX or on GPUs; changes features by ~0.5% and the
# vertices by a few tenths of a mm, see docs/speed.md).
_C.DEMO.FEATURE_DTYPE = 'float32'
# Run the detector on every DETECT_EVERY-th frame only (1 = every frame); the Kalman tracker carries each
# person's box over the frames in between (marked in frame_filled).
_C.DEMO.DETECT_EVERY = 1
# Online mode (--stream): the fraction of the source's frame interval x stride the processing of one frame may
# take; above it the stride grows (every k-th frame is processed), below half of it the stride shrinks.
_C.DEMO.STREAM_LOAD = 0.8
# Pinhole camera of the camera-space outputs (trans_cam, joints2d_img, exports; lib/demo/camera.py): focal
# length in pixels, 0 = the image diagonal sqrt(W^2 + H^2); the principal point is the image centre.
_C.DEMO.FOCAL_LENGTH = 0.0
# Camera of the overlay video: 'weak' (orig_cam, as the official demo) or 'perspective' (trans_cam + pinhole).
_C.DEMO.CAMERA = 'weak'
# Axes of the GLB/BVH exports (lib/demo/export/motion.py): 'yup' (x right, y up, z towards the viewer; glTF's
# and Blender's frame) or 'camera' (the camera frame: x right, y down, z away from the camera).
_C.DEMO.EXPORT_FRAME = 'yup'
# Length unit of the BVH export: 'cm' (most BVH tools) or 'm'.
_C.DEMO.BVH_UNITS = 'cm'
# World frame (lib/demo/world.py): estimate the camera's rotation from the background (off: the camera is
# taken as static, and the world is the first frame's camera frame, levelled); the longest side (pixels) the
# frames are shrunk to for the background tracks; the fewest inlier tracks of a good frame (fewer: the
# rotation is held or interpolated there, with a warning naming the frames).
_C.DEMO.CAMERA_MOTION = True
_C.DEMO.CAMERA_MOTION_MAX_SIDE = 480
_C.DEMO.CAMERA_MOTION_MIN_TRACKS = 20
# Space of the GLB/BVH exports: 'world' (the levelled world frame; the GLB's camera animated with the
# estimated rotation), 'camera' (the camera frame, camera fixed), or 'auto': world when the camera turns by
# more than 1 degree over the video, else camera.
_C.DEMO.EXPORT_SPACE = 'auto'
# One-Euro smoothing of the exported joint rotations and root translation, forward and backward (no lag;
# lib/demo/smoothing.py; off: GLoT is already smooth): minimum cutoff (Hz), cutoff added per unit of speed
# (Hz per rad/s or m/s), cutoff of the speed estimate (Hz). The results file is never smoothed.
_C.DEMO.SMOOTH = False
_C.DEMO.SMOOTH_MIN_CUTOFF = 2.0
_C.DEMO.SMOOTH_BETA = 1.0
_C.DEMO.SMOOTH_D_CUTOFF = 1.0


# What each official TITLE selected in the official dataset code (lib/dataset/_dataset_3d.py load_db and
# get_single_item): the training databases and whether Human3.6M's SMPL parameters are supervised. Applied by
# load_config to a YAML with such a TITLE that does not set DATASET.FILES / DATASET.H36M_USE_SMPL itself.
OFFICIAL_TITLES = {
    'repr_table4_3dpw_model': {
        'ThreeDPW.TRAIN': '3dpw_train_occ_db.pt', 'MPII3D.TRAIN': 'mpii3d_train_scale12_occ_db.pt',
        'Human36M.TRAIN': 'h36m_train_25fps_occ_db.pt', 'H36M_USE_SMPL': False},
    'repr_table4_h36m_mpii3d_model': {
        'ThreeDPW.TRAIN': '3dpw_train_db.pt', 'MPII3D.TRAIN': 'mpii3d_train_scale12_db.pt',
        'Human36M.TRAIN': 'h36m_train_25fps_db.pt', 'H36M_USE_SMPL': True},
    'repr_table6_3dpw_model': {
        'ThreeDPW.TRAIN': '3dpw_train_db.pt', 'MPII3D.TRAIN': 'mpii3d_train_scale12_occ_db.pt',
        'Human36M.TRAIN': 'h36m_train_25fps_occ_db.pt', 'H36M_USE_SMPL': True},
}


def _official_title_opts(cfg: CN, path: Path) -> list[str]:
    """``KEY VALUE`` pairs of :data:`OFFICIAL_TITLES` for a YAML that names an official TITLE without setting
    ``DATASET.FILES`` or ``DATASET.H36M_USE_SMPL`` itself (each left out key gets the official choice)."""
    choice = OFFICIAL_TITLES.get(cfg.TITLE)
    if choice is None:
        return []
    with open(path) as f:
        dataset = (yaml.safe_load(f) or {}).get('DATASET') or {}
    opts = []
    for key, value in choice.items():
        if key == 'H36M_USE_SMPL':
            if key not in dataset:
                opts += ['DATASET.H36M_USE_SMPL', str(value)]
        elif 'FILES' not in dataset:
            opts += [f'DATASET.FILES.{key}', value]
    return opts


def get_cfg_defaults() -> CN:
    """A mutable copy of the defaults."""
    return _C.clone()


def load_config(cfg_file: str | os.PathLike | None = None, opts: list[str] | None = None) -> CN:
    """Defaults, merged with ``cfg_file`` and then the ``KEY VALUE`` pairs in ``opts``; frozen.

    Raises:
        ConfigError: missing or malformed file, unknown key, bad value type, odd-length ``opts``, a value
            out of its range (:func:`lib.core.checks.check_config`).
    """
    cfg = get_cfg_defaults()
    if cfg_file:
        path = Path(cfg_file)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            with open(path, encoding='utf-8') as f:
                loaded = CN.load_cfg(f)
            cfg.merge_from_other_cfg(_numbers_as_defaults(cfg, loaded))
        except yaml.YAMLError as err:
            raise ConfigError(f"malformed YAML in {path}: {' '.join(str(err).split())}") from None
        except (KeyError, ValueError, AssertionError, TypeError) as err:
            raise ConfigError(f"{path}: {_yacs_message(err)}") from None
        cfg.merge_from_list(_official_title_opts(cfg, path))
    return merge_settings(cfg, opts)


def merge_settings(cfg: CN, opts: list | dict | None) -> CN:
    """``cfg`` (left unchanged) merged with ``KEY VALUE`` pairs (a flat list as on the command line, or a
    dict of dotted keys to values, strings or Python values), checked (:func:`lib.core.checks.check_config`)
    and frozen. A whole number given for a float key is taken as that float (``DEMO.FOCAL_LENGTH 960``).

    Raises:
        ConfigError: odd-length ``opts``, unknown key, bad value type, a value out of its range.
    """
    cfg = cfg.clone()
    cfg.defrost()
    if isinstance(opts, dict):
        opts = [item for pair in opts.items() for item in pair]
    if opts:
        if len(opts) % 2:
            raise ConfigError(f"overrides must be KEY VALUE pairs, got an odd number: {' '.join(map(str, opts))}")
        pairs = [(key, _number_as_default(cfg, key, value)) for key, value in zip(opts[0::2], opts[1::2])]
        try:
            cfg.merge_from_list([item for pair in pairs for item in pair])
        except (KeyError, ValueError, AssertionError, TypeError) as err:
            raise ConfigError(f"override: {_yacs_message(err)}") from None
    check_config(cfg)
    cfg.freeze()
    return cfg


def _number_as_default(cfg: CN, key: str, value):
    """``value`` (a string as typed, or a Python value) as a float when it is a whole number and ``key``'s
    default is a float."""
    if not isinstance(config_value(cfg, key), float):
        return value
    number = CN._decode_cfg_value(value) if isinstance(value, str) else value
    return float(number) if isinstance(number, int) and not isinstance(number, bool) else value


def _numbers_as_defaults(defaults: CN, loaded: CN) -> CN:
    """``loaded`` (a YAML file's tree) with whole numbers of float keys made floats, in place."""
    for key, value in loaded.items():
        default = defaults.get(key) if isinstance(defaults, CN) else None
        if isinstance(value, CN):
            _numbers_as_defaults(default, value)
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            loaded[key] = float(value)
    return loaded


def load_config_text(text: str) -> CN:
    """A config saved as YAML text (``cfg.dump()``, as checkpoints store it), frozen, not merged or checked."""
    try:
        cfg = CN.load_cfg(text)
    except (yaml.YAMLError, TypeError, ValueError) as err:
        raise ConfigError(f"a stored config is not readable YAML: {' '.join(str(err).split())[:120]}") from None
    cfg.freeze()
    return cfg


def stored_config_changes(stored: str | None, cfg: CN, keys: tuple[str, ...]) -> list[str]:
    """``'KEY saved -> now'`` for every leaf under ``keys`` where ``cfg`` differs from a config ``stored`` as
    YAML text (a checkpoint's; :func:`lib.core.checks.config_differences`); none when nothing is stored (an
    official checkpoint). The one comparison behind the architecture check and the resume check."""
    return config_differences(load_config_text(stored), cfg, keys) if stored else []


def _yacs_message(err: Exception) -> str:
    msg = ' '.join(str(err.args[0] if err.args else err).split()).strip('"\'')
    for yacs_words in ('Non-existent config key', 'Non-existent key'):
        if msg.startswith(yacs_words):
            return msg.replace(yacs_words, 'unknown config key') + ' (see lib/core/config.py)'
    return msg


def data_root(cfg: CN) -> Path:
    """The data root: ``cfg.DATA_ROOT``, else ``$GLOT_DATA_ROOT``, else ``<repo>/data``."""
    root = cfg.DATA_ROOT or os.environ.get(DATA_ROOT_ENV, '') or REPO_ROOT / 'data'
    return Path(root).expanduser()


def resolve_path(cfg: CN, path: str | os.PathLike, under: str | os.PathLike | None = None) -> Path:
    """Turn a config path into a file path: absolute paths are returned unchanged; ``./x`` and ``../x`` are
    relative to the current folder (the official YAMLs' ``./data/...``); other relative paths are under
    ``DATA_ROOT / under`` (``under`` itself resolved the same way)."""
    text = os.fspath(path)
    p = Path(text).expanduser()
    if p.is_absolute():
        return p
    if text.startswith(CWD_PREFIXES):
        return Path.cwd() / p
    base = data_root(cfg) if under is None else resolve_path(cfg, under)
    return base / p


def other_reading(cfg: CN, path: Path) -> Path | None:
    """For a missing file ``path`` resolved by :func:`resolve_path`: the same relative path read from the other
    base (the current folder instead of ``DATA_ROOT``, or the other way round), when a file is there; else
    None. Lets an error name both places instead of guessing."""
    path = Path(path)
    for here, there in ((data_root(cfg).absolute(), Path.cwd()), (Path.cwd(), data_root(cfg).absolute())):
        try:
            candidate = there / path.absolute().relative_to(here)
        except ValueError:
            continue
        if candidate != path.absolute() and candidate.is_file():
            return candidate
    return None


def db_path(cfg: CN, dataset: str, split: str) -> Path:
    """Path of the database of ``dataset`` (a DATASET.FILES name) and ``split`` ('TRAIN', 'VAL', 'TEST')."""
    if dataset not in cfg.DATASET.FILES:
        raise ConfigError(f"unknown dataset '{dataset}'; known: {', '.join(cfg.DATASET.FILES)}")
    files = cfg.DATASET.FILES[dataset]
    if split not in files:
        raise ConfigError(f"dataset '{dataset}' has no {split} file; it has {', '.join(files)}")
    return resolve_path(cfg, files[split], under=cfg.DATASET.DB_DIR)


def resolve_device(cfg_device: str):
    """torch.device for a DEVICE value; 'auto' picks CUDA when available. 'cuda' (the official YAMLs' value)
    without CUDA gives the CPU and one log line (per process); 'cuda:N' without CUDA is an error."""
    if cfg_device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(cfg_device)
    except RuntimeError:
        raise ConfigError(f"DEVICE '{cfg_device}' is not a torch device (use auto, cpu, cuda, cuda:N)") from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        if cfg_device == 'cuda':
            _log_cuda_fallback()
            return torch.device('cpu')
        raise ConfigError(f"DEVICE '{cfg_device}' asked for CUDA but torch sees no GPU; use DEVICE cpu or auto")
    return device


@functools.cache
def _log_cuda_fallback() -> None:
    """The one log line (per process) of DEVICE 'cuda' running on the CPU."""
    logger.info("DEVICE 'cuda': torch sees no GPU, running on the CPU (as DEVICE auto does)")
