"""Errors that scripts report in one line (no traceback): they describe bad input or a stop."""
from __future__ import annotations

import pickle

from .io import ExportTargetError
from .resume import TrainingInterrupted


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded safely (e.g. it holds a pickled object)."""


# ConfigError, DatasetError, shape mismatches: ValueError; missing files: FileNotFoundError;
# a NaN loss: FloatingPointError (NonFiniteLossError).
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError, pickle.UnpicklingError, TrainingInterrupted,
               ExportTargetError)
