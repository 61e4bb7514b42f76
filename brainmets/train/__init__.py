"""Training: boundary-weight maps, prepared cases, loss, DALI data pipeline and k-fold training of the U-Net."""
