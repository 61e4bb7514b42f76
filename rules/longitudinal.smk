# stage: longitudinal
