"""Data: image sources (a folder, a Places365 file list, the embedded photographs), training views, validation
pairs, free-form masks and the fixed mask set, image and mask files."""

from .datasets import EMBEDDED, DataError, ImageSource, TrainingViews, ValidationPairs, open_source, read_file_list
