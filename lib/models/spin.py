"""SPIN's HMR network (ResNet-50 trunk + iterative SMPL regressor) and SPIN checkpoint reading.

GLoT consumes the 2048-d average-pooled ResNet-50 features of SPIN (``HMR.feature_extractor``); the SPIN
checkpoint ``spin_model_checkpoint.pth.tar`` (dict key ``model``) also initialises GLoT's global regressor
when training starts from scratch (``load_spin_regressor``). The trunk is torchvision's ResNet-50, built
without downloading ImageNet weights (the SPIN checkpoint overwrites every weight).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torchvision

from lib.models.regressor import IterativeRegressor
from lib.core.errors import UserError
from lib.core.files import SPIN_SOURCE

SPIN_HINT = f"spin_model_checkpoint.pth.tar comes from {SPIN_SOURCE}"
REGRESSOR_KEYS = ('init_pose', 'init_shape', 'init_cam', 'fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias',
                  'decpose.weight', 'decpose.bias', 'decshape.weight', 'decshape.bias', 'deccam.weight',
                  'deccam.bias')
TRUNK_LAYERS = ('conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4')


def read_spin_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``model`` state dict of a SPIN checkpoint, on the CPU.

    Raises:
        UserError: the file is missing, unreadable, or has no ``model`` entry.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"SPIN checkpoint not found: {path}. It comes from {SPIN_SOURCE}; put it there or "
                        f"set TRAIN.PRETRAINED_REGRESSOR")
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=False)
    except Exception as err:   # torch.load raises many types for truncated or foreign files
        raise UserError(f"cannot read SPIN checkpoint {path}: {' '.join(str(err).split())[:200]}") from None
    state = ckpt.get('model') if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a SPIN checkpoint (no 'model' state dict); {SPIN_HINT}")
    return {key.removeprefix('module.'): value for key, value in state.items()}


def _check_keys(path, state: dict, model_state: dict, keys) -> None:
    missing = [k for k in keys if k not in state]
    wrong = [f'{k} {tuple(state[k].shape)} vs {tuple(model_state[k].shape)}' for k in keys
             if k in state and tuple(state[k].shape) != tuple(model_state[k].shape)]
    if missing or wrong:
        detail = '; '.join(filter(None, [f"missing {', '.join(missing[:6])}" if missing else '',
                                         f"shape mismatch {', '.join(wrong[:6])}" if wrong else '']))
        raise UserError(f"{path} does not look like a SPIN checkpoint ({detail}); {SPIN_HINT}")


def load_spin_regressor(regressor: IterativeRegressor, path: str | Path) -> None:
    """Copy SPIN's regressor weights and mean parameters (fc1, fc2, decpose, decshape, deccam, init_*) into
    ``regressor``, as the official GLoT does for its global regressor. ``fc2`` is skipped if the regressor
    has none (``MODEL.KEEP_UNUSED_WEIGHTS False``)."""
    state = read_spin_state(path)
    own = regressor.state_dict()
    keys = [k for k in REGRESSOR_KEYS if k in own]
    _check_keys(path, state, own, keys)
    regressor.load_state_dict({k: state[k] for k in keys}, strict=False)


class HMR(IterativeRegressor):
    """SPIN HMR: ResNet-50 trunk (torchvision layout, no ImageNet download) + regressor with ``fc2``.

    State dict keys are SPIN's (``conv1.weight``, ``layer1.0.conv1.weight``, ..., ``fc1.weight``, ...,
    ``init_pose``), so ``spin_model_checkpoint.pth.tar`` loads strictly. The mean-parameter buffers are
    zeros until a checkpoint is loaded.
    """

    def __init__(self):
        super().__init__(mean_params=None, use_fc2=True)
        resnet = torchvision.models.resnet50(weights=None)
        for name in TRUNK_LAYERS:
            setattr(self, name, getattr(resnet, name))
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def feature_extractor(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised crops ``(N, 3, 224, 224)`` -> average-pooled features ``(N, 2048)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)

    def forward(self, images: torch.Tensor, n_iter: int = 3) -> dict[str, torch.Tensor]:
        """Crops ``(N, 3, 224, 224)`` -> ``features (N, 2048)``, ``pose (N, 144)`` (6D), ``shape (N, 10)``,
        ``cam (N, 3)``."""
        features = self.feature_extractor(images)
        pose, shape, cam = super().forward(features, n_iter=n_iter)
        return {'features': features, 'pose': pose, 'shape': shape, 'cam': cam}


def load_hmr(path: str | Path, device: torch.device | str = 'cpu') -> HMR:
    """SPIN HMR with the weights of checkpoint ``path``, in eval mode on ``device``."""
    model = HMR()
    state = read_spin_state(path)
    own = model.state_dict()
    _check_keys(path, state, own, [k for k in own if not k.endswith('num_batches_tracked')])
    unexpected = [k for k in state if k not in own]
    if unexpected:
        raise UserError(f"{path} has keys HMR does not know ({', '.join(unexpected[:6])}); {SPIN_HINT}")
    model.load_state_dict(state, strict=False)
    return model.to(device).eval()
