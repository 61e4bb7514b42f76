# stage: preprocess
