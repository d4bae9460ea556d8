"""Supervised fine-tuning of the student (step 05): data with unmask-aware labels,
packing or length-grouped batches, full or LoRA training with checkpoints and resume."""

from ktools.train.batching import STRATEGIES, collate, make_batches
from ktools.train.config import DEFAULT_LEARNING_RATE, METHODS, TrainConfig
from ktools.train.data import (
    IGNORE_INDEX,
    MixFormatError,
    TokenizedExample,
    load_mix,
    tokenize_conversation,
    tokenize_mix,
)
from ktools.train.result import TrainResult
from ktools.train.trainer import detect_backends, save_final_model, train

__all__ = [
    "DEFAULT_LEARNING_RATE", "IGNORE_INDEX", "METHODS", "STRATEGIES", "MixFormatError", "TokenizedExample",
    "TrainConfig", "TrainResult", "collate", "detect_backends", "load_mix", "make_batches", "save_final_model",
    "tokenize_conversation", "tokenize_mix", "train",
]
