"""Continual multi-task pre-training: the config (`config`), the schedule (`schedule`), the
reader of the shards (`data`), the model with the tasks' heads (`model`, `task_head`), continuing
from a model (`init_model`), the trainer and its command line (`trainer`, `python -m
ernie.pretrain`), and the run's log (`log`)."""
