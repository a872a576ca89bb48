"""What trains and stores the models: data, the training loop, checkpoints, runs, process settings."""
