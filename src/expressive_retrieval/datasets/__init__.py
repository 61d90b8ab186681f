"""Custom Kedro datasets."""

from expressive_retrieval.datasets.bundle_dataset import BundleDataset
from expressive_retrieval.datasets.faiss_index_dataset import FaissIndexDataset
from expressive_retrieval.datasets.frozen_dataset import LatestVersionDataset
from expressive_retrieval.datasets.optional_dataset import OptionalDataset
from expressive_retrieval.datasets.raw_input_dataset import RawInputDataset
from expressive_retrieval.datasets.safetensors_dataset import SafetensorsDataset
from expressive_retrieval.datasets.segments_dataset import SegmentsDataset
from expressive_retrieval.datasets.text_files_dataset import TextFilesDataset
from expressive_retrieval.datasets.vectors_dataset import VectorBlocks, VectorsDataset

__all__ = [
    "BundleDataset",
    "FaissIndexDataset",
    "LatestVersionDataset",
    "OptionalDataset",
    "RawInputDataset",
    "SafetensorsDataset",
    "SegmentsDataset",
    "TextFilesDataset",
    "VectorBlocks",
    "VectorsDataset",
]
