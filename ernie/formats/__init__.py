"""Model directories and checkpoint formats: safetensors model directories (`checkpoint`),
Hugging Face (`hf_format`), the released static-graph checkpoints (`paddle_static_format`), and
moving parameter arrays into layers and scopes (`params_io`). `python -m ernie.convert` is their
command line."""
