"""What trains, stores and evaluates the models: data, the training loop, checkpoints, runs, process settings,
the comparisons of trained models with PCA."""
