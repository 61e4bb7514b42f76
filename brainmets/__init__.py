"""brainmets: brain-metastasis segmentation, uncertainty, longitudinal tracking and RANO-BM response."""

import os

__version__ = "0.1.0"

# TensorFlow turns its oneDNN CPU kernels on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX; elsewhere
# (AVX2-only CPUs) it runs 3-D convolutions through Eigen, and a demo training step costs about 7 times the
# CPU time (forward passes about 2 times). TensorFlow reads the switch when it is imported, so it is set
# here, before any brainmets module imports TensorFlow; a value the user exports wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
