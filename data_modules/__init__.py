"""Data modules: the built-in ICBM template stream and folders of real T1/T2 NIfTI subjects.

Both are ``pytorch_lightning.LightningDataModule``s with the same batch formats (see
``data_modules.base``), picked in YAML as ``class_path: data_modules.IcbmDataModule`` or
``data_modules.NiftiFolderDataModule``.
"""

from data_modules.augment import Augmentation
from data_modules.base import DataError, T1T2DataModule
from data_modules.icbm import IcbmDataModule
from data_modules.nifti_folder import NiftiFolderDataModule

__all__ = ["Augmentation", "DataError", "IcbmDataModule", "NiftiFolderDataModule", "T1T2DataModule"]
