"""What dataset modules share: objective builders (classification, regression, dense prediction),
mini-batches on the run's device, preparation through the registry and its command line, the
MultiMNIST generator, and synthetic stand-in data for profiling."""
