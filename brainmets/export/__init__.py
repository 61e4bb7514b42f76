"""Results back where scans came from: each DICOM scan's lesions, measurements and maps as DICOM objects."""
