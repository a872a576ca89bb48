"""Every experiment by name, the command line that regenerates their checkpoints, the likelihoods, the headline
results of each seed, and the task graph that retrains them all and computes those results."""
