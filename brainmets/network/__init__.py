"""What training and inference share: the 3-D U-Net and its presets, the model directory, the sliding window.

`model` builds the network, `presets.yaml` names its settings (config `model.preset`), `modeldir` reads
and writes a trained ensemble (model.json + fold_<k>/), `sliding` tiles a volume into Gaussian-weighted
windows. Neither stage package is imported from here.
"""
