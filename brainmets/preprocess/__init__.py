"""Per-scan preprocessing: RAS reorientation, resampling, brain extraction, N4, registration to the
baseline, z-score normalisation, cropping, and the way back to the native grid.

Heavy libraries (ANTs, torch) are imported inside the functions that need them.
"""

from brainmets.preprocess.native import file_to_native, map_file_to_native, maps_to_native, to_native, to_patient
from brainmets.preprocess.pipeline import preprocess_scan, read_record
from brainmets.preprocess.registration import register_to_baseline
from brainmets.preprocess.settings import PreprocessSettings, SkullStripSettings, load_settings, settings_from_config
from brainmets.preprocess.space import Scan, load_scan

__all__ = [
    "PreprocessSettings",
    "Scan",
    "SkullStripSettings",
    "load_scan",
    "load_settings",
    "file_to_native",
    "map_file_to_native",
    "maps_to_native",
    "preprocess_scan",
    "read_record",
    "register_to_baseline",
    "settings_from_config",
    "to_native",
    "to_patient",
]
