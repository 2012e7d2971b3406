"""The seven pre-training tasks of ERNIE 2.0, one module each, registered with
`ernie_common.tasks` exactly as a user's own task is (docs/custom_task.md): word-aware knowledge
masking, capitalization and token-document relation; structure-aware sentence reordering and
sentence distance; semantic-aware discourse relation and IR relevance."""
