"""Exported models as their consumers load them: the inference program of a fine-tuned model and
its description (`inference_model`). `python -m ernie.export`, `ernie.predict` and `ernie.encode`
are the command lines."""
