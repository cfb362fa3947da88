"""Radiomic distillation: projection heads, symmetric InfoNCE, warm-up, collapse monitor.

The student projects the U-Net bottleneck, the teacher projects the robustly
normalised 34-d radiomic vector of the same patch; both land on the unit
sphere in ``embed_dim`` dimensions and InfoNCE pulls matching pairs together
against the other patches of the batch.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .config import DistillConfig


class StudentProjection(nn.Module):
    """AvgPool3D, flatten, MLP, l2 norm: ``(B, C, d, h, w)`` bottleneck to ``(B, embed_dim)``.

    Parameters
    ----------
    in_channels : bottleneck channels.
    config : DistillConfig (``pool_size``, ``student_hidden``, ``embed_dim``).
    """

    def __init__(self, in_channels: int, config: DistillConfig = DistillConfig()):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool3d(config.pool_size)
        flat = in_channels * config.pool_size ** 3
        self.mlp = nn.Sequential(nn.Linear(flat, config.student_hidden), nn.SiLU(),
                                 nn.Linear(config.student_hidden, config.embed_dim))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(self.pool(feats).flatten(1)).float(), dim=1)

    def forward_map(self, feats: torch.Tensor) -> torch.Tensor:
        """Project every bottleneck voxel: ``(B, C, d, h, w)`` to ``(B, embed_dim, d, h, w)``.

        Only defined for ``pool_size == 1``, where it equals :meth:`forward`
        applied to each voxel's feature vector.
        """
        if self.pool.output_size not in (1, (1, 1, 1)):
            raise ValueError("forward_map needs a student trained with pool_size=1")
        z = self.mlp(feats.movedim(1, -1))
        return F.normalize(z.float(), dim=-1).movedim(-1, 1)


class TeacherProjection(nn.Module):
    """MLP and l2 norm: normalised radiomic vectors ``(B, teacher_dim)`` to ``(B, embed_dim)``."""

    def __init__(self, config: DistillConfig = DistillConfig()):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(config.teacher_dim, config.teacher_hidden), nn.SiLU(),
                                 nn.Linear(config.teacher_hidden, config.embed_dim))

    def forward(self, radiomics: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(radiomics.float()), dim=1)


def info_nce(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE with in-batch negatives.

    Parameters
    ----------
    student, teacher : (B, E) l2-normalised embeddings; row ``i`` of both comes
        from patch ``i``.
    temperature : softmax temperature.

    Returns
    -------
    Scalar: the mean of the student-to-teacher and teacher-to-student
    cross-entropies (``log B`` for unrelated embeddings, 0 for a perfect match).
    """
    logits = student.float() @ teacher.float().t() / temperature
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def distill_weight(step: int, warmup_start: int, warmup_end: int, lambda_max: float) -> float:
    """InfoNCE weight: 0 before ``warmup_start``, linear to ``lambda_max`` at ``warmup_end``."""
    if step < warmup_start:
        return 0.0
    if step >= warmup_end or warmup_end <= warmup_start:
        return float(lambda_max)
    return float(lambda_max) * (step - warmup_start) / (warmup_end - warmup_start)


def embedding_spread(z: torch.Tensor) -> dict[str, float]:
    """Collapse monitor of a batch of l2-normalised embeddings ``(B, E)``.

    Returns
    -------
    ``{"std": ..., "mean_cos": ...}``: the per-dimension standard deviation
    across the batch times ``sqrt(E)`` (about 1 for embeddings spread over the
    sphere, 0 when collapsed to one point) and the mean cosine similarity of
    distinct pairs (1 when collapsed).
    """
    z = z.detach().float()
    b, e = z.shape
    std = float(z.std(dim=0, unbiased=False).mean() * e ** 0.5) if b > 1 else 0.0
    if b > 1:
        sim = z @ z.t()
        mean_cos = float((sim.sum() - sim.diagonal().sum()) / (b * (b - 1)))
    else:
        mean_cos = 1.0
    return {"std": std, "mean_cos": mean_cos}


def robust_normalize(x: torch.Tensor, median: torch.Tensor, iqr: torch.Tensor,
                     clip: Optional[float] = 10.0) -> torch.Tensor:
    """``(x - median) / iqr`` per feature (IQR floored at 1e-6), optionally clipped."""
    med = torch.as_tensor(median, dtype=torch.float32, device=x.device)
    scale = torch.as_tensor(iqr, dtype=torch.float32, device=x.device).clamp_min(1e-6)
    out = (x.float() - med) / scale
    return out.clamp(-clip, clip) if clip is not None else out


def robust_stats(x: torch.Tensor) -> dict[str, list[float]]:
    """Median and interquartile range of each column of ``(N, F)`` radiomic vectors."""
    x = x.float()
    q = torch.quantile(x, torch.tensor([0.25, 0.5, 0.75]), dim=0)
    return {"median": q[1].tolist(), "iqr": (q[2] - q[0]).tolist()}
