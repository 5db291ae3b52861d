"""The data layer: readers (image files, DICOM, MedMNIST .npz, built-in real sets), seeded stratified splits, and the
one preprocessing shared by training, export and the C runtime. See docs/data.md."""

from edgeskd.data.builtin import BUILTIN_DATASETS, brain_mri_samples, chest_xray_samples, fashion_mnist
from edgeskd.data.dataset import DatasetSplits, ImageSet
from edgeskd.data.dicom import read_dicom
from edgeskd.data.images import IMAGE_EXTENSIONS, read_image
from edgeskd.data.load import load_dataset
from edgeskd.data.medmnist import MEDMNIST, load_medmnist
from edgeskd.data.preprocess import PreprocessSpec, preprocess, preprocess_batch
from edgeskd.data.tensors import to_tensors

__all__ = [
    "BUILTIN_DATASETS", "DatasetSplits", "IMAGE_EXTENSIONS", "ImageSet", "MEDMNIST", "PreprocessSpec",
    "brain_mri_samples", "chest_xray_samples", "fashion_mnist", "load_dataset", "load_medmnist", "preprocess",
    "preprocess_batch", "read_dicom", "read_image", "to_tensors",
]
