"""The seven ERNIE 2.0 pre-training tasks, named once for configs, shards, logs and checkpoints."""

KNOWLEDGE_MASKING = "knowledge_masking"
CAPITALIZATION = "capitalization"
TOKEN_DOCUMENT = "token_document"
SENTENCE_REORDERING = "sentence_reordering"
SENTENCE_DISTANCE = "sentence_distance"
DISCOURSE_RELATION = "discourse_relation"
IR_RELEVANCE = "ir_relevance"

# Token-level tasks label tokens; sentence-level tasks label a whole example (on [CLS]).
TOKEN_TASKS = (KNOWLEDGE_MASKING, CAPITALIZATION, TOKEN_DOCUMENT)
SENTENCE_TASKS = (SENTENCE_REORDERING, SENTENCE_DISTANCE, DISCOURSE_RELATION, IR_RELEVANCE)
ALL_TASKS = TOKEN_TASKS + SENTENCE_TASKS
# Paper, Table 1: text corpora carry these; discourse and IR data carry only their own task.
TEXT_CORPUS_TASKS = (KNOWLEDGE_MASKING, CAPITALIZATION, TOKEN_DOCUMENT, SENTENCE_REORDERING,
                     SENTENCE_DISTANCE)
