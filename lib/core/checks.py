"""Start-up checks of config values: every range, choice and cross-key rule in one table, so that a bad value
stops the program with one line naming the key, the value and what is allowed, before any work.

The table is :data:`RULES` (key -> check); :func:`check_config` runs it and the rules that involve several keys.
"""
from __future__ import annotations

import math
from typing import Callable

from lib.core.errors import ConfigError

Check = Callable[[str, object], None]


def at_least(low: float) -> Check:
    """A number >= ``low``."""
    def check(key, value):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
            raise ConfigError(f"{key} {value!r} is out of range: use a number >= {low}")
    return check


def within(low: float, high: float, high_open: bool = False) -> Check:
    """A number in ``[low, high]`` (``[low, high)`` with ``high_open``)."""
    def check(key, value):
        ok = isinstance(value, (int, float)) and low <= value and (value < high if high_open else value <= high)
        if not ok:
            raise ConfigError(f"{key} {value!r} is out of range: use a number in [{low}, {high}"
                              f"{')' if high_open else ']'}")
    return check


def one_of(*choices: str, case_sensitive: bool = True) -> Check:
    """One of ``choices``."""
    def check(key, value):
        allowed = choices if case_sensitive else [c.lower() for c in choices]
        if (value if case_sensitive else str(value).lower()) not in allowed:
            raise ConfigError(f"{key} {value!r} is not one of {', '.join(choices)}")
    return check


def subset_of(*choices: str, non_empty: bool = False) -> Check:
    """A list of items from ``choices`` (at least one with ``non_empty``)."""
    def check(key, value):
        bad = [v for v in value if v not in choices]
        if bad or (non_empty and not value):
            raise ConfigError(f"{key} {list(value)!r} must list {'one or more' if non_empty else 'only'} of "
                              f"{', '.join(choices)}")
    return check


# The SMPL bodies (lib/models/smpl.py) and the demo's export formats (lib/demo/export/).
GENDERS = ('neutral', 'male', 'female')
EXPORT_FORMATS = ('glb', 'bvh')
DATASETS_2D = ('Insta',)
DATASETS_3D = ('ThreeDPW', 'MPII3D', 'Human36M')
PROBABILITY = within(0.0, 1.0)
RULES: dict[str, Check] = {
    'NUM_WORKERS': at_least(0),
    'DATASET.SEQLEN': at_least(3),
    'TRAIN.DATASETS_2D': subset_of(*DATASETS_2D),
    'TRAIN.DATASETS_3D': subset_of(*DATASETS_3D),
    'TRAIN.DATASET_EVAL': one_of(*DATASETS_3D),
    'TRAIN.BATCH_SIZE': at_least(1),
    'TRAIN.VAL_BATCH_SIZE': at_least(1),
    'TRAIN.OVERLAP': within(0.0, 1.0, high_open=True),
    'TRAIN.DATA_2D_RATIO': PROBABILITY,
    'TRAIN.START_EPOCH': at_least(0),
    'TRAIN.END_EPOCH': at_least(1),
    'TRAIN.NUM_ITERS_PER_EPOCH': at_least(1),
    'TRAIN.LR_PATIENCE': at_least(0),
    'TRAIN.val_epoch': at_least(0),
    'TRAIN.GEN_OPTIM': one_of('Adam', 'AdamW', 'SGD', case_sensitive=False),
    'TRAIN.GEN_LR': at_least(0.0),
    'TRAIN.GEN_MIN_LR': at_least(0.0),
    'TRAIN.GEN_WD': at_least(0.0),
    'TRAIN.AMP': one_of('none', 'bf16', 'fp16'),
    'MODEL.num_head': at_least(1),
    'MODEL.d_model': at_least(1),
    'MODEL.n_layers': at_least(1),
    'MODEL.short_n_layers': at_least(1),
    'MODEL.short_d_model': at_least(1),
    'MODEL.short_num_head': at_least(1),
    'MODEL.stride_short': at_least(1),
    'MODEL.mask_ratio': within(0.0, 1.0, high_open=True),
    **{f'MODEL.{k}': PROBABILITY for k in ('dropout', 'drop_path_r', 'atten_drop', 'short_dropout',
                                            'short_drop_path_r', 'short_atten_drop', 'drop_reg_short')},
    'EVAL.BATCH_SIZE': at_least(1),
    'EVAL.PROTOCOLS': subset_of('official', 'corrected', non_empty=True),
    'EVAL.RENDER_FRAMES': at_least(0),
    'EVAL.RENDER_MODE': one_of('painter', 'zbuffer'),
    'DEMO.DETECTOR': one_of('auto', 'torchvision', 'hog'),
    'DEMO.TRACKER_BATCH_SIZE': at_least(1),
    'DEMO.GENDER': one_of(*GENDERS),
    'DEMO.EXPORT': subset_of(*EXPORT_FORMATS),
    'DEMO.MIN_TRACK_LEN': at_least(1),
    'DEMO.BBOX_SCALE': at_least(1e-3),
    'DEMO.FEATURE_BATCH_SIZE': at_least(1),
    'DEMO.MODEL_BATCH_SIZE': at_least(1),
    'DEMO.DETECTION_THRESHOLD': PROBABILITY,
    'DEMO.FPS': at_least(0.0),
    'DEMO.HOG_MIN_HEIGHT': at_least(1),
    'DEMO.HOG_PYRAMID_SCALE': at_least(1.001),
    'DEMO.DUPLICATE_OVERLAP': PROBABILITY,
    'DEMO.TRACK_MIN_HITS': at_least(1),
    'DEMO.TRACK_APPEARANCE_WEIGHT': at_least(0.0),
    'DEMO.TRACK_APPEARANCE_MIN': PROBABILITY,
    'DEMO.STATIC_TRACK_MOTION': at_least(0.0),
    'DEMO.STATIC_TRACK_FRACTION': PROBABILITY,
    'DEMO.TRACK_IOU_THRESHOLD': PROBABILITY,
    'DEMO.TRACK_MAX_AGE': at_least(0),
    'DEMO.BBOX_SMOOTH_SIGMA': at_least(0.0),
    'DEMO.WINDOW_PADDING': one_of('clamp', 'repeat'),
    'DEMO.RENDER_MODE': one_of('zbuffer', 'painter'),
    'DEMO.RENDER_ALPHA': PROBABILITY,
    'DEMO.FOCAL_LENGTH': at_least(0.0),
    'DEMO.CAMERA': one_of('weak', 'perspective'),
    'DEMO.EXPORT_FRAME': one_of('yup', 'camera'),
    'DEMO.BVH_UNITS': one_of('cm', 'm'),
    'DEMO.CAMERA_MOTION_MAX_SIDE': at_least(32),
    'DEMO.CAMERA_MOTION_MIN_TRACKS': at_least(3),
    'DEMO.EXPORT_SPACE': one_of('auto', 'world', 'camera'),
    'DEMO.SMOOTH_MIN_CUTOFF': at_least(1e-6),
    'DEMO.SMOOTH_BETA': at_least(0.0),
    'DEMO.SMOOTH_D_CUTOFF': at_least(1e-6),
    'DEMO.BATCH_TIMEOUT_MIN': at_least(1e-3),
    'DEMO.FEATURE_DTYPE': one_of('float32', 'bfloat16'),
    'DEMO.DETECT_EVERY': at_least(1),
    'DEMO.STREAM_LOAD': within(0.05, 1.0),
}


def config_value(cfg, key: str, default=None):
    """The value (or sub-tree) of dotted ``key`` in ``cfg``; ``default`` where the key does not exist."""
    node = cfg
    for part in key.split('.'):
        if not hasattr(node, 'keys') or part not in node:
            return default
        node = node[part]
    return node


def _leaves(node, prefix: str) -> dict:
    if hasattr(node, 'items'):
        return {k: v for name, child in node.items() for k, v in _leaves(child, f'{prefix}.{name}').items()}
    return {prefix: node}


def config_differences(saved, cfg, keys: tuple[str, ...]) -> list[str]:
    """``'KEY saved -> now'`` for every leaf under ``keys`` whose value in ``cfg`` differs from ``saved``'s
    (leaves that ``saved`` does not have, e.g. keys added after it was written, are not compared)."""
    out = []
    for key in keys:
        for leaf, before in _leaves(config_value(saved, key), key).items():
            now = config_value(cfg, leaf)
            if _plain(before) != _plain(now):
                out.append(f'{leaf} {_plain(before)!r} -> {_plain(now)!r}')
    return out


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def check_config(cfg) -> None:
    """Raise one :class:`ConfigError` for the first value of ``cfg`` that breaks a rule."""
    for key, check in RULES.items():
        check(key, config_value(cfg, key))
    train = cfg.TRAIN
    if train.END_EPOCH < train.START_EPOCH:
        raise ConfigError(f"TRAIN.END_EPOCH {train.END_EPOCH} is before TRAIN.START_EPOCH {train.START_EPOCH}")
    n_2d = int(train.BATCH_SIZE * train.DATA_2D_RATIO)
    n_3d = train.BATCH_SIZE - n_2d
    if n_2d and not train.DATASETS_2D:
        raise ConfigError(f"TRAIN.DATA_2D_RATIO {train.DATA_2D_RATIO} asks for {n_2d} 2D clips per batch but "
                          "TRAIN.DATASETS_2D is empty; set the ratio to 0 or name a 2D dataset")
    if n_3d and not train.DATASETS_3D:
        raise ConfigError(f"TRAIN.DATA_2D_RATIO {train.DATA_2D_RATIO} leaves {n_3d} 3D clips per batch but "
                          "TRAIN.DATASETS_3D is empty; set the ratio to 1 or name a 3D dataset")
