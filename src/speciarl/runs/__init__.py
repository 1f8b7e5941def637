"""What a run needs around the algorithm: loggers, checkpoints, sweeps, distributed helpers."""
