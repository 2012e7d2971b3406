"""Model directories and checkpoint formats: safetensors model directories (`checkpoint`),
Hugging Face (`hf_format`), PaddleNLP (`paddlenlp_format`) and the released static-graph
checkpoints (`paddle_static_format`); `python -m ernie.convert` is their command line. Moving
parameter arrays into layers and scopes is `ernie.model.params_io`."""
