"""Network, loss, boundary-weight maps, DALI data pipeline and k-fold training of the 3-D U-Net."""
