"""Training settings, kept apart from the code that uses them so a recipe can be read in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class TrainConfig:
    """Everything `fit` needs to know besides the model and the data."""

    epochs: int = 15
    batch_size: int = 128
    optimizer: str = "sgd"  # "sgd" (momentum, Nesterov) or "adam"
    lr: float = 0.05  # the peak learning rate under "onecycle"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "onecycle"  # "onecycle", "step" or "constant"
    step_size: int = 5  # "step": multiply the lr by `gamma` every `step_size` epochs
    gamma: float = 0.1
    label_smoothing: float = 0.0
    degrees: float = 0.0  # augmentation: random rotation in +-degrees ...
    translate: float = 0.0  # ... and random shift in +-translate of the image size ...
    scale: float = 0.0  # ... and random zoom in 1 +- scale ...
    elastic: float = 0.0  # ... and a smooth random warp moving pixels by up to about this many pixels
    eval_batch_size: int = 2000
    ema: float = 0.0  # decay of an exponential moving average of the weights (0: off); when on, it is what is validated and kept
    bn_recompute: bool = False  # the kept weights' BatchNorm statistics are measured afresh before each validation
    swa_start: int = 0  # from this epoch on, keep the plain mean of the live weights at each epoch's end (SWA)
    distill: float = 0.0  # weight of the kept model's soft predictions in the live model's loss (self-distillation)
    clean_epochs: int = 0  # the last this many epochs train on the images as they are (augmentation off)

    def to_dict(self) -> dict:
        """The settings as a plain dict (for JSON result files)."""
        d = asdict(self)
        # recipes without these settings keep the result files' keys they always had
        for key in ("ema", "elastic", "bn_recompute", "swa_start", "distill", "clean_epochs"):
            if not d[key]:
                del d[key]
        return d

    @property
    def augment(self) -> dict | None:
        """Keyword arguments for `random_affine`, or None when augmentation is off."""
        if not (self.degrees or self.translate or self.scale or self.elastic):
            return None
        kwargs = {"degrees": self.degrees, "translate": self.translate}
        return dict(kwargs, **{k: v for k, v in (("scale", self.scale), ("elastic", self.elastic)) if v})
