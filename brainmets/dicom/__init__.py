"""DICOM in and out: MR series written from NIfTI images, DICOM series read as scans."""
