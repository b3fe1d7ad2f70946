"""Training: train state and optimizer, the generic train/eval step, device parallelism, the loop."""
