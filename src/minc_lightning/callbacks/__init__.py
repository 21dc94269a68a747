"""Callbacks a config can add (``--trainer.callbacks+=minc_lightning.callbacks.OnlineKNN``, the
label-free ``RankMe``) and those the ``minc-lightning`` command installs itself: the resumable
checkpoint, the line progress for log files, Λ's pictures and the run summary."""

from minc_lightning.callbacks.checkpoint import ResumableCheckpoint
from minc_lightning.callbacks.fast_paths import FastPaths
from minc_lightning.callbacks.knn import OnlineKNN
from minc_lightning.callbacks.lambda_pictures import LambdaPictures
from minc_lightning.callbacks.progress import LineProgress
from minc_lightning.callbacks.rankme import RankMe
from minc_lightning.callbacks.summary import RunSummary

__all__ = [
    "FastPaths",
    "LambdaPictures",
    "LineProgress",
    "OnlineKNN",
    "RankMe",
    "ResumableCheckpoint",
    "RunSummary",
]
