"""Every experiment by name, the likelihoods, and the task graph that retrains them all."""
