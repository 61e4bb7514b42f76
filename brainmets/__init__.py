"""brainmets: brain-metastasis segmentation, uncertainty, longitudinal tracking and RANO-BM response."""

__version__ = "0.1.0"
