"""Code for the MNIST < 20k-parameter tutorial: data, models, training engine and plots."""

from .config import TrainConfig
from .data import load_splits, load_test_set, resolve_data_root
from .engine import (evaluate, fit, load_checkpoint, load_trained_model, pick_device, predict, save_checkpoint,
                     seed_everything)
from .models import FINAL, STEPS, build_model, count_parameters, receptive_field

__all__ = [
    "TrainConfig", "load_splits", "load_test_set", "resolve_data_root", "evaluate", "fit", "load_checkpoint",
    "load_trained_model",
    "pick_device", "predict", "save_checkpoint", "seed_everything", "FINAL", "STEPS", "build_model",
    "count_parameters", "receptive_field",
]
