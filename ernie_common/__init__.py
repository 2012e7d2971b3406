"""What data generation (`data_gen`) and the model library (`ernie`) share, at the bottom of the
package's layers: the pre-training task registry (`tasks`), tokenizers over an ERNIE vocabulary
(`tokenization`), atomic file writes and hashing (`fileio`). It imports nothing of the project."""
