# stage: evaluate
