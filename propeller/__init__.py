"""The training engine: runs a model function over a data pipeline as a Paddle static program
(or in dygraph), with hooks for logging, evaluation and checkpoints. It knows nothing about
ERNIE's tasks and depends on Paddle only."""
