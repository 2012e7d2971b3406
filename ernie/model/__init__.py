"""The model core: the config, the encoder (static program and dygraph from one layer), the
original parameter names, encoder inputs, moving parameter arrays into layers and scopes
(`params_io`, raising `errors.CheckpointError`), the losses the heads share (`losses`), and the
optimizer and learning-rate schedules."""
