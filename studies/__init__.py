"""The studies behind docs/: what was run is listed in configs/studies/*.yaml, the runs go through
the project's own commands (`python -m ernie.pretrain`, `python -m ernie.finetune`), and each
report is a Markdown template in studies/templates/ filled from the runs' files. Nothing in the
framework imports this package; it sits above everything else."""
