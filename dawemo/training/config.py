"""Training hyper-parameters (importable without PyTorch, for the CLI)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Pull of the refitted emotion layer towards the jointly trained one (dawemo.training.head). CV
# accuracy is flat from 1 to 10 (v4: 0.832 at 1, 0.830 at 3, 0.826 at 10). The rule: the weakest pull
# of 1, 3 and 10 that keeps the joint layer's signs for happy; 3 for v4, 10 for v5 with its pair
# branch (--head-ridge 10; see MODEL_CARD.md).
HEAD_RIDGE = 3.0


@dataclass
class TrainConfig:
    epochs: int = 60
    batch_size: int = 16
    segments_per_window: int = 6  # 6 x 2 s segments of each 10 s crop
    window_frames: int = 313  # 10 s crops
    pairs_per_batch: int = 8
    ranking_weight: float = 0.5
    logit_penalty: float = 0.02
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 32
    dropout: float = 0.2
    band_shift: int = 2  # random transposition by up to +-1 semitone (24 bands per octave)
    context_frames: int = 313  # level reference: the 10 s ending with each segment
    seed: int = 0
    # Fraction of training, at its end, over whose weights the returned model averages (0: the last
    # weights). Averaging along the annealing phase gives a flatter, better-generalising solution.
    average_last: float = 0.0
    # With averaging: 1 re-estimates batch-norm statistics on soundtrack and contrast-pair batches in
    # turn, as training's running statistics mix them; 0 on soundtrack batches only (model v4).
    norm_with_pairs: int = 0
    # Weak real-music supervision: a ranking loss that orders each batch's soundtrack windows by
    # signal estimates of the qualities (dawemo.training.signal_estimates), for pairs whose
    # standardised estimates differ by more than estimate_margin. 0: off (model v4).
    estimate_weight: float = 0.0
    estimate_margin: float = 0.5
    # Qualities whose features come from a second, smaller network trained on the contrast pairs alone
    # (comma-separated MIDLEVEL_NAMES; "": none). Trained jointly with the emotion loss, melodiousness
    # and tonal stability drift from their definitions (v4's probes), yet carry no emotion information
    # that the other features lack; a network that never hears the soundtracks keeps them to the
    # definitions, and its features are out-of-fold for every excerpt by construction.
    branch_qualities: str = ""
    branch_width: int = 16
    branch_steps: int = 2000
    branch_pairs_per_batch: int = 32

    def branch_columns(self) -> list[int]:
        """Indices into MIDLEVEL_NAMES of ``branch_qualities`` (ValueError for an unknown name)."""
        from dawemo import constants as C

        names = [n.strip() for n in self.branch_qualities.split(",") if n.strip()]
        unknown = [n for n in names if n not in C.MIDLEVEL_NAMES]
        if unknown:
            raise ValueError(f"branch_qualities: unknown {', '.join(unknown)}; known: {', '.join(C.MIDLEVEL_NAMES)}")
        return sorted(C.MIDLEVEL_NAMES.index(n) for n in names)

    def as_dict(self) -> dict:
        return asdict(self)
