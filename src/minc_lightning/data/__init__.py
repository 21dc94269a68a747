"""The data path: the dataset table and its on-disk readers, image decoding, the two-view
recipes with their device-side augmentation, the seeded resumable sampler, the batch format,
and ``MINCDataModule``, which puts them together."""

from minc_lightning.data.batch import unpack_views
from minc_lightning.data.module import MINCDataModule
from minc_lightning.data.presets import DATASETS, PRESETS, DatasetEntry, Preset, Source
from minc_lightning.data.views import default_views, uint8_output, uint8_views

__all__ = [
    "DATASETS",
    "PRESETS",
    "DatasetEntry",
    "MINCDataModule",
    "Preset",
    "Source",
    "uint8_views",
    "default_views",
    "unpack_views",
    "uint8_output",
]
