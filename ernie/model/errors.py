"""The error of a parameter set that cannot be used: a model directory or parameter file that is
missing or corrupt, or parameters that do not fit a model's config (names, shapes). It lives with
the model, below the formats that read files and the code that moves arrays into a program, so
both raise the same error without importing each other."""


class CheckpointError(ValueError):
    """A model directory or parameter file that is missing, corrupt, or does not fit its config."""
