"""Fine-tuning ERNIE on downstream tasks: readers of the public formats, heads, metrics, training.

The paper's fine-tuning tasks (Tables 3-6) fall into five kinds, each a module of its own:
sentence (pair) classification, which also covers regression and ranking (`text_kind`), sequence
labelling (`labelling_kind`) and span-extraction reading comprehension (`mrc_kind`).
`tasks.TASKS` names every supported dataset and says which reader, kind and metrics it uses.
"""

FINETUNE_FILE = "finetune.json"  # beside a fine-tuned model: its task, head and labels, for serving
