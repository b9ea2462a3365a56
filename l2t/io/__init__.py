"""Infrastructure: checkpoints, metrics tracking, the run lock, progress, threads, signals,
devices, torchrun ranks and plots. Knows nothing of teachers."""
