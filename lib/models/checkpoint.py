"""GLoT checkpoints: the one place that knows the official file layout.

An official checkpoint (``*.pth.tar``) is a pickled dict with ``gen_state_dict`` (198 entries), ``epoch``,
``performance`` (a numpy scalar, hence ``weights_only=False``) and ``gen_optimizer``. Our model uses the
same parameter names and shapes, except for these official entries, handled on purpose:

- The two embedded SMPL copies (``regressor.smpl.*`` and ``global_modeling.regressor.smpl.*``):
  - their smplx per-batch parameters ``betas (64, 10)``, ``global_orient (64, 3)`` and ``body_pose (64, 69)``
    (zeros, never used) are dropped;
  - their buffers are *not* loaded: the model keeps the SMPL built from the user's files. They are checked
    instead: a shape mismatch (e.g. 300-beta ``shapedirs``) is an error, different values a warning.
- The dead weights (``global_modeling.regressor.fc2.*``, ``regressor.local_reg.decshape.*`` / ``deccam.*``)
  are loaded when the model keeps them (``MODEL.KEEP_UNUSED_WEIGHTS``, default) and skipped otherwise.

Our checkpoints also store the config they were trained with (``config``, YAML text). :func:`load_checkpoint`
with ``cfg`` refuses a config whose architecture (:data:`ARCHITECTURE_KEYS`) differs from the stored one,
even when the shapes fit (e.g. another ``num_head``); official checkpoints store none and are not checked.
Non-finite weights are refused at the door, naming the entry.

``save_checkpoint`` writes the official layout, including the SMPL buffers, zero dummy parameters and dead
weights (zeros if the model has none), so the official code can load our files with ``strict=True``.

Optimizer state, both ways: the official trainer's Adam runs over all 177 tensors of ``generator.parameters()``,
the 6 SMPL dummy parameters included (they never get a gradient, so Adam keeps no state for them); ours runs
over the model's 171. ``gen_optimizer`` is written indexed as the official 177 (:func:`official_optimizer_state`,
``step`` as a Python number as torch 1.4 wrote it), so the official ``resume_pretrained`` loads it, and
:func:`load_optimizer_state` reads both that and our earlier 171-entry files. ``performance`` is written as the
official ``numpy.float64`` (``inf`` before the first validation, the official "no best yet").
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from lib.core.checks import config_value
from lib.core.config import load_config_text, stored_config_changes
from lib.core.errors import UserError
from lib.core.io import atomic_path

logger = logging.getLogger(__name__)

OFFICIAL_SMPL_PREFIXES = ('regressor.smpl.', 'global_modeling.regressor.smpl.')
# smplx 0.1.13 SMPL(batch_size=64) creates these per-batch parameters; the official model never uses them.
SMPL_DUMMY_PARAMS = {'betas': (64, 10), 'global_orient': (64, 3), 'body_pose': (64, 69)}
# Official weights that no computation uses (the global regressor's fc2, the KTD heads' decshape / deccam); shapes for writing zeros.
UNUSED_WEIGHTS = {
    'global_modeling.regressor.fc2.weight': (1024, 1024),
    'global_modeling.regressor.fc2.bias': (1024,),
    'regressor.local_reg.decshape.weight': (10, 1024),
    'regressor.local_reg.decshape.bias': (10,),
    'regressor.local_reg.deccam.weight': (3, 1024),
    'regressor.local_reg.deccam.bias': (3,),
}
# Prefixes added by nn.DataParallel / DistributedDataParallel and torch.compile.
WRAPPER_PREFIXES = ('module.', '_orig_mod.')
SMPL_VALUE_TOLERANCE = 1e-5
# Config keys that change the network a checkpoint's weights belong to (shapes or forward computation).
ARCHITECTURE_KEYS = ('DATASET.SEQLEN', 'MODEL.num_head', 'MODEL.d_model', 'MODEL.n_layers', 'MODEL.short_n_layers',
                     'MODEL.short_d_model', 'MODEL.short_num_head', 'MODEL.stride_short',
                     'MODEL.HSCR_OFFICIAL_POSE_SLICE', 'MODEL.KEEP_UNUSED_WEIGHTS')


class CheckpointError(UserError):
    """A checkpoint file that cannot be used with this model."""


def _unwrap(model: nn.Module) -> nn.Module:
    """The bare GLoT inside DataParallel/DDP (``.module``) or torch.compile (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(model, 'module', None) or getattr(model, '_orig_mod', None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def _strip_wrappers(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint dict on the CPU (official files need ``weights_only=False``).

    Raises:
        CheckpointError: missing, truncated or non-PyTorch file, no ``gen_state_dict``/state dict in it, or
            non-finite weights.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=False)
    except Exception as err:   # torch.load raises many types for truncated or foreign files
        reason = ' '.join(str(err).split())[:160] or type(err).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: truncated or not a PyTorch file ({reason})") from None
    if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        ckpt = {'gen_state_dict': ckpt}
    if isinstance(ckpt, dict) and isinstance(ckpt.get('gen_state_dict'), dict):
        for key, value in ckpt['gen_state_dict'].items():
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
                raise CheckpointError(f"{path}: weight {key} holds NaN or infinite values; the file is damaged "
                                      "or comes from a diverged run: use another checkpoint")
        return ckpt
    raise CheckpointError(f"{path} is not a GLoT checkpoint: it has no 'gen_state_dict' (keys: "
                          f"{', '.join(map(str, list(ckpt)[:8])) if isinstance(ckpt, dict) else type(ckpt).__name__})")


def _shape(t: torch.Tensor) -> str:
    return '(' + ', '.join(map(str, t.shape)) + ')'


def _listing(kind: str, names: list[str], limit: int = 4) -> str:
    more = f', ... +{len(names) - limit}' if len(names) > limit else ''
    return f"{len(names)} {kind} ({', '.join(names[:limit])}{more})"


def stored_architecture(cfg_file: str | None, path: str | os.PathLike | None) -> list[str]:
    """``KEY VALUE`` overrides of the :data:`ARCHITECTURE_KEYS` stored in our checkpoint ``path``, to build its
    model when no config file (``--cfg``) is given; none when ``cfg_file`` is given.

    Raises:
        CheckpointError: neither given, an unreadable file, or an official checkpoint (it stores no config).
    """
    if cfg_file:
        return []
    if not path:
        raise CheckpointError("give --cfg (the YAML the checkpoint was trained with), or --checkpoint with one of "
                              "our checkpoints (they store their config)")
    ckpt = read_checkpoint(path)
    if not ckpt.get('config'):
        raise CheckpointError(f"{path} stores no config (an official checkpoint): pass the official YAML it was "
                              f"trained with, e.g. --cfg configs/repr_table1_3dpw.yaml")
    stored = load_config_text(ckpt['config'])
    values = {key: config_value(stored, key) for key in ARCHITECTURE_KEYS}
    return [item for key, value in values.items() if value is not None for item in (key, repr(value))]


def check_architecture(ckpt: dict, cfg, path: str | os.PathLike) -> None:
    """Refuse ``cfg`` when its :data:`ARCHITECTURE_KEYS` differ from the config stored in ``ckpt`` (one line
    naming them); a checkpoint without a stored config (official) passes."""
    changes = stored_config_changes(ckpt.get('config'), cfg, ARCHITECTURE_KEYS)
    if changes:
        raise CheckpointError(f"{path} was trained with another architecture than this config describes: "
                              f"{'; '.join(changes)}; pass the config it was trained with (--cfg)")


def load_checkpoint(model: nn.Module, path: str | os.PathLike, cfg=None) -> dict:
    """Load GLoT weights from an official or our own checkpoint into ``model`` (strict, see module doc).

    Args:
        cfg: the config ``model`` was built from; when given, :func:`check_architecture` runs first.
    Returns:
        The checkpoint dict (``epoch``, ``performance``, ``gen_optimizer``, ... when present).
    Raises:
        CheckpointError: unreadable file, non-finite weights, an architecture other than ``cfg``'s, or
            keys/shapes that do not fit the model; the message lists the missing, unexpected and mismatching
            entries.
    """
    ckpt = read_checkpoint(path)
    if cfg is not None:
        check_architecture(ckpt, cfg, path)
    target = _unwrap(model)
    own = target.state_dict()
    state = {_strip_wrappers(k): v for k, v in ckpt['gen_state_dict'].items()}

    to_load, smpl_entries, unexpected, mismatched = {}, {}, [], []
    for key, value in state.items():
        smpl_prefix = next((p for p in OFFICIAL_SMPL_PREFIXES if key.startswith(p)), None)
        if smpl_prefix is not None and key[len(smpl_prefix):] in SMPL_DUMMY_PARAMS:
            continue
        if key in UNUSED_WEIGHTS and key not in own:
            continue
        if key not in own or not isinstance(value, torch.Tensor):
            unexpected.append(key)
        elif value.shape != own[key].shape:
            if key.endswith('.shapedirs') and value.dim() == 3 and value.shape[-1] != own[key].shape[-1]:
                raise CheckpointError(
                    f"{path}: {key} has {value.shape[-1]} shape coefficients {_shape(value)}, GLoT uses "
                    f"{own[key].shape[-1]} {_shape(own[key])}; this file was saved with a different SMPL "
                    f"layer and is not a GLoT checkpoint for this code")
            mismatched.append(key)
        elif smpl_prefix is not None:
            smpl_entries[key] = value
        else:
            to_load[key] = value
    missing = [k for k in own if not k.startswith(OFFICIAL_SMPL_PREFIXES) and k not in to_load
               and k not in mismatched]
    if missing or unexpected or mismatched:
        shapes = [f'{k} {_shape(state[k])} vs model {_shape(own[k])}' for k in mismatched]
        parts = [_listing(kind, names) for kind, names in
                 (('missing key(s)', missing), ('unexpected key(s)', unexpected),
                  ('shape mismatch(es)', shapes)) if names]
        raise CheckpointError(f"{path} does not fit this GLoT model: {'; '.join(parts)}. Is it a GLoT "
                              f"checkpoint saved with the same MODEL settings?")
    target.load_state_dict(to_load, strict=False)
    _check_smpl_values(path, smpl_entries, own)
    return ckpt


def _check_smpl_values(path, entries: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> None:
    """Warn once if the checkpoint's SMPL buffers differ from the SMPL model in use."""
    for key, value in entries.items():
        ours = own[key]
        if value.dtype.is_floating_point:
            diff = (value.to(ours.device, ours.dtype) - ours).abs().max().item() if value.numel() else 0.0
            differs = diff > SMPL_VALUE_TOLERANCE
        else:
            diff, differs = None, not torch.equal(value.to(ours.device, ours.dtype), ours)
        if differs:
            how = f'max abs diff {diff:.3g}' if diff is not None else 'different values'
            logger.warning("SMPL in %s differs from the SMPL model files in use (%s: %s); outputs will not "
                           "equal the checkpoint author's. Official GLoT weights expect "
                           "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl as SMPL_NEUTRAL.pkl", path, key, how)
            return


def official_state_dict(model: nn.Module) -> OrderedDict:
    """The model's weights in the official 198-entry layout, on the CPU: the state_dict plus the zero SMPL
    dummy parameters before each SMPL copy's buffers, and zero dead weights the model does not keep."""
    out = OrderedDict()
    seen_prefixes = set()
    for key, value in _unwrap(model).state_dict().items():
        prefix = next((p for p in OFFICIAL_SMPL_PREFIXES if key.startswith(p)), None)
        if prefix is not None and prefix not in seen_prefixes:
            seen_prefixes.add(prefix)
            for name, shape in SMPL_DUMMY_PARAMS.items():
                out[prefix + name] = torch.zeros(shape)
        out[key] = value.detach().cpu()
    for key, shape in UNUSED_WEIGHTS.items():
        out.setdefault(key, torch.zeros(shape))
    return out


def official_parameter_names(model: nn.Module) -> list[str]:
    """Names of the official ``generator.parameters()`` in their order (177 for the default model): the model's
    parameters with each SMPL copy's dummy parameters where the official model holds them."""
    own = {name for name, _ in _unwrap(model).named_parameters()}
    return [key for key in official_state_dict(model) if key in own or _is_smpl_dummy(key)]


def _is_smpl_dummy(key: str) -> bool:
    return any(key.startswith(p) and key[len(p):] in SMPL_DUMMY_PARAMS for p in OFFICIAL_SMPL_PREFIXES)


def _reindexed(state: dict, index_map: dict[int, int], num_params: int) -> dict:
    """Optimizer ``state`` (one param group) with parameter ``i`` renumbered ``index_map[i]`` (dropped when not
    in it) and the group covering ``range(num_params)``."""
    group = dict(state['param_groups'][0])
    group['params'] = list(range(num_params))
    per_param = {index_map[i]: dict(v) for i, v in state['state'].items() if i in index_map}
    return {'state': per_param, 'param_groups': [group]}


def official_optimizer_state(model: nn.Module, state: dict) -> dict:
    """The state_dict of an optimizer built over ``model.parameters()`` (one group), indexed as the official
    trainer's Adam over the 177 ``generator.parameters()``; ``step`` as a Python number (torch 1.4). Kept as
    it is when it has several groups or the model lacks the unused official weights (no official layout)."""
    own = [name for name, _ in _unwrap(model).named_parameters()]
    names = official_parameter_names(model)
    if len(state.get('param_groups', ())) != 1 or not set(UNUSED_WEIGHTS) <= set(own):
        return state
    position = {name: i for i, name in enumerate(names)}
    out = _reindexed(state, {i: position[name] for i, name in enumerate(own)}, len(names))
    for entry in out['state'].values():
        step = entry.get('step')
        if isinstance(step, torch.Tensor) and step.numel() == 1:
            entry['step'] = int(step.item()) if float(step.item()).is_integer() else step.item()
    return out


def load_optimizer_state(optimizer: torch.optim.Optimizer, model: nn.Module, state: dict) -> None:
    """Load a ``gen_optimizer`` entry, official layout (177 parameters, from the official trainer or
    :func:`official_optimizer_state`) or ours (one entry per ``model.parameters()``), into ``optimizer``
    (built over ``model.parameters()``). Raises ValueError when it fits neither."""
    own = [name for name, _ in _unwrap(model).named_parameters()]
    groups = state.get('param_groups', ())
    if len(groups) == 1 and len(groups[0]['params']) != len(own):
        names = official_parameter_names(model)
        if len(groups[0]['params']) != len(names):
            raise ValueError(f"optimizer state covers {len(groups[0]['params'])} parameters; this model has "
                             f"{len(own)} ({len(names)} in the official layout)")
        position = {name: i for i, name in enumerate(own)}
        saved_index = {p: k for k, p in enumerate(groups[0]['params'])}
        index_map = {saved_index[p]: position[name] for p, name in zip(groups[0]['params'], names)
                     if name in position}
        state = _reindexed({'state': {saved_index[i]: v for i, v in state['state'].items()},
                            'param_groups': groups}, index_map, len(own))
    optimizer.load_state_dict(state)


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *, epoch: int = 0, performance=None,
                    gen_optimizer=None, **extra) -> Path:
    """Write ``{epoch, gen_state_dict, performance, gen_optimizer, **extra}`` to ``path`` atomically (a
    temporary file in the same folder, renamed into place: :func:`lib.core.io.atomic_path`), so an interrupted save never leaves a truncated
    checkpoint behind.

    Args:
        performance: a number, written as the official ``numpy.float64`` (None stays None).
        gen_optimizer: an optimizer or its state_dict over ``model.parameters()`` (None if not training),
            written in the official layout (:func:`official_optimizer_state`).
        extra: more entries (scheduler state, RNG states, config, ...).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(gen_optimizer, 'state_dict'):
        gen_optimizer = gen_optimizer.state_dict()
    if gen_optimizer is not None:
        gen_optimizer = official_optimizer_state(model, gen_optimizer)
    if performance is not None:
        performance = np.float64(performance)
    ckpt = {'epoch': epoch, 'gen_state_dict': official_state_dict(model), 'performance': performance,
            'gen_optimizer': gen_optimizer, **extra}
    with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        torch.save(ckpt, f)
    return path
