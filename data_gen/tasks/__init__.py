"""One module per ERNIE 2.0 pre-training task: what its labels are and how they are made."""
