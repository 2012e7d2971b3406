"""The model core: the config, the encoder (static program and dygraph from one layer), the
original parameter names, encoder inputs, and the optimizer and learning-rate schedules."""
