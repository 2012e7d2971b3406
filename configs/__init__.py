"""The shipped configs (model presets, data, pre-training and fine-tuning configs, discourse
markers, stop words), installed as the package `ernie_configs`: `ernie_common.shipped_configs.find`
resolves a `configs/...` path against it where the path does not exist where the command runs."""
