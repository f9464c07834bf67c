"""Hierarchical Spatial Correlation Regressor (HSCR) with its kinematic-tree pose heads (KTD).

HSCR corrects the global branch's estimate (pose0, shape0, cam0, all detached) from the local feature in
one linear pass (no activations):

    h_s = dropout(fc1([x, shape0]))            x: (..., 256)  ->  h_s: (..., 1024)
    h_p = dropout(fc2([x, pose0]))             h_p: (..., 1024)
    pose  = KTD(h_p, pose0) + pose0            (..., 144)  6D per joint
    shape = decshape(h_s) + shape0             (..., 10)
    cam   = deccam([h_p, h_s, cam0]) + cam0    (..., 3)

KTD has one Linear head per SMPL joint, run in joint order 0..23. Head j reads ``[h_p, the deltas of j's
ancestors (root first), a 6-vector of pose0]`` and outputs joint j's 6D delta. With the official slice
(``MODEL.HSCR_OFFICIAL_POSE_SLICE``, needed for the official weights) joint j reads ``pose0[j:j+6]``; the
paper's intent is its own block ``pose0[6j:6j+6]``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from lib.models.regressor import NCAM, NPOSE, NSHAPE, NUM_JOINTS
from lib.utils.joints import smpl_ancestors

# Ancestors of each SMPL joint, root first: KTD_ANCESTORS[4] == [0, 1].
KTD_ANCESTORS = tuple(tuple(smpl_ancestors(j)) for j in range(NUM_JOINTS))


class KTD(nn.Module):
    """Kinematic-tree pose heads. Head j: ``Linear(hidden + 6 * len(ancestors_j) + 6, 6)``.

    Args:
        hidden_dim: width of ``h_p``. official_pose_slice: read ``pose0[j:j+6]`` (official) instead of
            ``pose0[6j:6j+6]``. keep_unused: create the official, never used ``decshape``/``deccam``.
    """

    def __init__(self, hidden_dim: int = 1024, official_pose_slice: bool = True, keep_unused: bool = True):
        super().__init__()
        self.pose_offsets = tuple(j if official_pose_slice else 6 * j for j in range(NUM_JOINTS))
        self.joint_regs = nn.ModuleList()
        for ancestors in KTD_ANCESTORS:
            head = nn.Linear(hidden_dim + 6 * len(ancestors) + 6, 6)
            nn.init.xavier_uniform_(head.weight, gain=0.01)
            self.joint_regs.append(head)
        if keep_unused:
            self.decshape = nn.Linear(hidden_dim, NSHAPE)
            self.deccam = nn.Linear(hidden_dim, NCAM)

    def forward(self, h: torch.Tensor, pose0: torch.Tensor) -> torch.Tensor:
        """``h (..., hidden)``, ``pose0 (..., 144)`` -> pose delta ``(..., 144)`` in joint order."""
        deltas = []
        for head, ancestors, offset in zip(self.joint_regs, KTD_ANCESTORS, self.pose_offsets):
            inputs = [h] + [deltas[a] for a in ancestors] + [pose0[..., offset:offset + 6]]
            deltas.append(head(torch.cat(inputs, dim=-1)))
        return torch.cat(deltas, dim=-1)


class HSCR(nn.Module):
    """HSCR head (official module name ``regressor``).

    Args:
        smpl: the shared body model, stored as ``self.smpl`` (official state_dict layout).
        in_dim: local feature width (256). hidden_dim: 1024. drop: dropout after fc1/fc2 (drop_reg_short).
        official_pose_slice, keep_unused: see ``KTD``.
    """

    def __init__(self, smpl: nn.Module, in_dim: int = 256, hidden_dim: int = 1024, drop: float = 0.5,
                 official_pose_slice: bool = True, keep_unused: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(in_dim + NSHAPE, hidden_dim)
        self.fc2 = nn.Linear(in_dim + NPOSE, hidden_dim)
        self.drop1 = nn.Dropout(drop)
        self.drop2 = nn.Dropout(drop)
        self.decshape = nn.Linear(hidden_dim, NSHAPE)
        self.deccam = nn.Linear(hidden_dim * 2 + NCAM, NCAM)
        self.smpl = smpl
        self.local_reg = KTD(hidden_dim, official_pose_slice=official_pose_slice, keep_unused=keep_unused)

    def forward(self, x: torch.Tensor, pose0: torch.Tensor, shape0: torch.Tensor,
                cam0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Local feature ``x (..., 256)`` and the global estimate ``pose0 (..., 144)``, ``shape0 (..., 10)``,
        ``cam0 (..., 3)`` -> corrected pose, shape, cam of the same shapes. No gradient flows into the
        global estimate."""
        pose0, shape0, cam0 = pose0.detach(), shape0.detach(), cam0.detach()
        h_s = self.drop1(self.fc1(torch.cat([x, shape0], dim=-1)))
        h_p = self.drop2(self.fc2(torch.cat([x, pose0], dim=-1)))
        pose = self.local_reg(h_p, pose0) + pose0
        shape = self.decshape(h_s) + shape0
        cam = self.deccam(torch.cat([h_p, h_s, cam0], dim=-1)) + cam0
        return pose, shape, cam
