# stage: infer
