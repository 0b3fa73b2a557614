"""Datasets: downloads with checksums, or local copies; decoded once into uint8 tensors."""
from .download import DATA_DIR_ENV, DownloadError, default_data_dir, download
from .image_folder import load_episode_folders, load_image_folder
from .images import ImageDataset
from .mnist import load_mnist
from .omniglot import load_omniglot

__all__ = ["DATA_DIR_ENV", "DownloadError", "ImageDataset", "default_data_dir", "download",
           "load_episode_folders", "load_image_folder", "load_mnist", "load_omniglot"]
