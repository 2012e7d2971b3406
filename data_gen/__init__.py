"""Offline data generation for ERNIE 2.0 pre-training: corpora, sentence splitting, vocabulary."""
