"""The network: a small VGG-style CNN over spectrogram segments -> 7 mid-level features -> 8 emotions.

Emotions are a single linear layer of the 7 mid-level features (A2Mid2E-Joint, Chowdhury et
al. 2019), so each emotion is exactly ``bias + sum(weight * feature)``.
"""

from __future__ import annotations

import torch
from torch import nn

from dawemo import constants as C


def _conv(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class SegmentEncoder(nn.Module):
    """(N, 1, n_bands, segment_frames) normalised log spectrogram -> (N, embedding_size)."""

    def __init__(self, width: int = 16, dropout: float = 0.3) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv(1, w, kernel=5, stride=2),
            _conv(w, w),
            nn.MaxPool2d(2),
            _conv(w, 2 * w),
            _conv(2 * w, 2 * w),
            nn.MaxPool2d(2),
            _conv(2 * w, 4 * w),
            _conv(4 * w, 4 * w),
            nn.MaxPool2d(2),
            _conv(4 * w, 4 * w),
        )
        self.dropout = nn.Dropout(dropout)
        self.embedding_size = 4 * w

    def forward(self, segments: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.features(segments).mean(dim=(2, 3)))


class MidlevelEmotionNet(nn.Module):
    """Segments -> per-segment mid-level logits; windows -> mid-level features -> emotions.

    A window's mid-level features are ``sigmoid(mean of its segments' logits)``; emotions on the
    1-9 scale are ``emotion_weights @ features + emotion_bias``.
    """

    def __init__(self, width: int = 16, dropout: float = 0.3,
                 emotion_mean: torch.Tensor | None = None,
                 emotion_std: torch.Tensor | None = None) -> None:
        super().__init__()
        self.encoder = SegmentEncoder(width, dropout)
        self.midlevel_head = nn.Linear(self.encoder.embedding_size, len(C.MIDLEVEL_NAMES))
        # Trained on standardised ratings; the rating scale is folded in on output.
        self.emotion_head = nn.Linear(len(C.MIDLEVEL_NAMES), len(C.EMOTION_NAMES))
        n_emotions = len(C.EMOTION_NAMES)
        self.register_buffer("emotion_mean", torch.full((n_emotions,), 5.0) if emotion_mean is None
                             else emotion_mean.float().clone())
        self.register_buffer("emotion_std", torch.ones(n_emotions) if emotion_std is None
                             else emotion_std.float().clone())

    def segment_logits(self, segments: torch.Tensor) -> torch.Tensor:
        """(N, 1, bands, frames) -> (N, 7) mid-level logits per segment."""
        return self.midlevel_head(self.encoder(segments))

    def emotions_standardised(self, midlevel: torch.Tensor) -> torch.Tensor:
        return self.emotion_head(midlevel)

    def emotions(self, midlevel: torch.Tensor) -> torch.Tensor:
        """(..., 7) features in [0, 1] -> (..., 8) emotions on the 1-9 scale."""
        return self.emotion_head(midlevel) * self.emotion_std + self.emotion_mean

    def linear_emotion_map(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The 8x7 weights and 8 biases that give emotions on the rating scale from features."""
        weight = self.emotion_head.weight * self.emotion_std[:, None]
        bias = self.emotion_head.bias * self.emotion_std + self.emotion_mean
        return weight.detach(), bias.detach()

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, K, 1, bands, frames) K segments per window -> midlevel (B, 7), emotions_std (B, 8),
        segment logits (B, K, 7)."""
        b, k = windows.shape[:2]
        segment_logits = self.segment_logits(windows.flatten(0, 1)).view(b, k, -1)
        midlevel = torch.sigmoid(segment_logits.mean(dim=1))
        return midlevel, self.emotions_standardised(midlevel), segment_logits


class OnnxGraph(nn.Module):
    """What is exported: the segments of one window -> per-segment logits, features, emotions."""

    def __init__(self, net: MidlevelEmotionNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, segments: torch.Tensor):
        logits = self.net.segment_logits(segments)
        midlevel = torch.sigmoid(logits.mean(dim=0))
        return logits, midlevel, self.net.emotions(midlevel)


class BranchedNet(nn.Module):
    """A jointly trained net whose features in ``branch_columns`` come from a pair-trained branch.

    Same interface as ``MidlevelEmotionNet`` for inference and export: per-segment logits (the
    branch's in its columns, the joint net's elsewhere), and the joint net's emotion layer.
    """

    def __init__(self, joint: MidlevelEmotionNet, branch: MidlevelEmotionNet, branch_columns: list[int]) -> None:
        super().__init__()
        self.joint, self.branch = joint, branch
        mask = torch.zeros(len(C.MIDLEVEL_NAMES), dtype=torch.bool)
        mask[list(branch_columns)] = True
        self.register_buffer("branch_mask", mask)

    @property
    def emotion_head(self) -> nn.Linear:
        return self.joint.emotion_head

    @property
    def emotion_mean(self) -> torch.Tensor:
        return self.joint.emotion_mean

    @property
    def emotion_std(self) -> torch.Tensor:
        return self.joint.emotion_std

    def segment_logits(self, segments: torch.Tensor) -> torch.Tensor:
        return torch.where(self.branch_mask, self.branch.segment_logits(segments), self.joint.segment_logits(segments))

    def emotions(self, midlevel: torch.Tensor) -> torch.Tensor:
        return self.joint.emotions(midlevel)

    def linear_emotion_map(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.joint.linear_emotion_map()
