"""The training engine; it depends on Paddle only and knows nothing about ERNIE's tasks.

- `learner.Learner` runs the training loop over a step plan and hands each step's metrics to
  hooks: `ProgressHook`, `LogHook` (JSON lines, plus sinks such as `VisualDLSink`),
  `CheckpointHook`, `EvalHook`.
- `static_runner.StaticRunner` runs a model function as a Paddle static (PIR) program, the default.
- `dygraph_runner.DygraphRunner` runs it in dygraph, alone or data-parallel under fleet.
- `mixed_precision` sets the static program up for float16 (with dynamic loss scaling) or bfloat16.
"""
