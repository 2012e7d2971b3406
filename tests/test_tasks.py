"""The pre-training task registry (`ernie_common.tasks`), tasks' options (`task_options:` of a data
config) and resources, and a user's own task (the example of docs/custom_task.md,
`examples/custom_task/`) taken through data generation, `inspect` and continual multi-task
pre-training beside built-in tasks."""
import json
import re
import subprocess
import sys

import pytest
import yaml

from data_gen.config import DataConfig, DataConfigError
from data_gen.decode import inspect
from data_gen.generate import build_tasks
from data_gen.make import fingerprint, make
from data_gen.shards import Shard, ShardError
from ernie_common import tasks as registry
from tests.conftest import REPO, small_config
from tests.test_data_gen_make import _documents

CUSTOM = REPO / "examples" / "custom_task" / "next_sentence.py"
CONNECTIVES = REPO / "examples" / "custom_task" / "connectives.txt"


def test_builtin_tasks_keep_their_ids_and_levels():
    ids = {name: registry.get(name).task_id for name in registry.builtin_names()}
    assert ids == {"knowledge_masking": 0, "capitalization": 1, "token_document": 2, "sentence_reordering": 3,
                   "sentence_distance": 4, "discourse_relation": 5, "ir_relevance": 6}
    assert [t.level for t in registry.resolve(list(ids))] == ["token"] * 3 + ["sentence"] * 4
    assert registry.by_id(5).name == "discourse_relation"


def test_unknown_tasks_and_clashes_are_clear_errors(tmp_path):
    with pytest.raises(registry.TaskError, match="unknown task 'spelling'.*task_modules"):
        registry.get("spelling")
    clash = tmp_path / "clash.py"
    clash.write_text("from data_gen.data_task import DataTask\nfrom ernie.pretrain.task_head import LinearHead\n"
                     "from ernie_common.tasks import SENTENCE, register\n"
                     "@register(head=LinearHead)\nclass Mine(DataTask):\n    name, task_id, level = 'mine', 3, SENTENCE\n")
    with pytest.raises(registry.TaskError, match="task id 3 of mine .* is taken by sentence_reordering"):
        registry.load_module(str(clash))
    with pytest.raises(registry.TaskError, match="cannot be imported"):
        registry.load_module("no_such_package.task")
    forgot = tmp_path / "forgot.py"  # a task class without @register
    forgot.write_text("from data_gen.data_task import DataTask\nclass Forgot(DataTask):\n    name = 'forgot'\n")
    registry.load_module(str(forgot))
    with pytest.raises(registry.TaskError, match=rf"unknown task 'forgot'.* \(the task_modules loaded \(.*{forgot}.*\) "
                                                 r"register no task of that name: is its class decorated with @register"):
        registry.get("forgot")


@pytest.mark.parametrize("attributes,head,says", [
    ("'capitalization', 20, TOKEN", "LinearHead", "task name 'capitalization' is taken by ernie_tasks.capitalization"),
    ("'mine', 1, TOKEN", "LinearHead", "task id 1 of mine .* is taken by capitalization"),
    ("'mine', 20, 'sentense'", "LinearHead", "needs a name, a level .* level='sentense'"),
    ("'mine', 20, SENTENCE", "TaskHead", "head <class 'ernie.pretrain.task_head.TaskHead'> must be a TaskHead class"),
    ("'mine', 20, SENTENCE", "3", "head 3 must be a TaskHead class"),
    ("'mine', 20, SENTENCE", "type('NotAHead', (), {})", "head <class '[a-z_]*.NotAHead'> must be a TaskHead class"),
    ("'plain', 20, SENTENCE", "LinearHead", "the task name 'plain' is the reader's stream of the examples that carry"),
    ("'mine', 20, TOKEN\n    text_task = True", "LinearHead", "task mine is token-level, so not a text task")])
def test_a_users_task_that_clashes_or_is_malformed_is_refused_on_import(tmp_path, attributes, head, says):
    """In a process that has not imported the built-in tasks (they load on first use): a name or id
    of one replaced it without a word."""
    (tmp_path / "mine.py").write_text(
        "from data_gen.data_task import DataTask\nfrom ernie.pretrain.task_head import LinearHead, TaskHead\n"
        "from ernie_common.tasks import SENTENCE, TOKEN, register\n"
        f"@register(head={head})\nclass Mine(DataTask):\n    name, task_id, level = {attributes}\n")
    done = subprocess.run([sys.executable, "-c", "import sys\nfrom ernie_common import tasks\ntry:\n"
                           f"    tasks.load_module({str(tmp_path / 'mine.py')!r})\nexcept tasks.TaskError as err:\n"
                           "    sys.exit(f'error: {err}')"], capture_output=True, text=True)
    assert done.returncode == 1 and re.search(says, done.stderr), done.stderr
    assert done.stderr.count("\n") == 1


_SENTENCE_TASK = """
from data_gen.data_task import DataTask
from ernie.pretrain.task_head import LinearHead
from ernie_common.tasks import SENTENCE, register
@register(head=LinearHead)
class Wrong(DataTask):
    name, task_id, level, text_task = {name!r}, {task_id}, SENTENCE, True
    def num_classes(self, generator):
        return 2
    def segment_example(self, context, segment, rng, stats):
        return context.plan([context.token_range(*segment)], self, {label}, stats)
"""
_TOKEN_TASK = """
import numpy as np
from data_gen.data_task import DataTask
from ernie.pretrain.task_head import LinearHead
from ernie_common.tasks import TOKEN, register
@register(head=LinearHead)
class Wrong(DataTask):
    name, task_id, level, label_fields = {name!r}, {task_id}, TOKEN, ({name!r} + "_label",)
    def token_labels(self, chunk, context, stats):
        n = len(chunk.ids)
        return {{{key}: {values}}}
"""


@pytest.mark.parametrize("task_id,template,label_key,values,says", [
    (41, _SENTENCE_TASK, "2", None, "label 2 is not one of its 2 classes"),
    (42, _SENTENCE_TASK, "0.7", None, "an example's label must be a whole number, its class, got 0.7"),
    (43, _TOKEN_TASK, "NAME + '_lbl'", "np.zeros(n)", r"must give a mapping of its label fields \['wrong_43_label'\]"),
    (44, _TOKEN_TASK, "NAME + '_label'", "np.full(n, 0.5)", "must hold integer labels .* values that are not whole"),
    (45, _TOKEN_TASK, "NAME + '_label'", "np.full(n, 200)", r"holds 200..200, where its field \(int8\) stores -1"),
    (46, _TOKEN_TASK, "NAME + '_label'", "np.zeros((n, 2))", r"has shape \(\d+, 2\), the chunk has \d+ tokens"),
    (48, _SENTENCE_TASK.replace("        return 2\n", "        pass\n"), "0", None,
     "a sentence-level task's num_classes.. must return its number of classes .* it returned None"),
    (49, _TOKEN_TASK.replace("return {{{key}: {values}}}", "return {{}}"), "", None,
     r"must give a mapping of its label fields \['wrong_49_label'\], got \[\]"),
    (50, _SENTENCE_TASK.replace("context.plan([context.token_range(*segment)]", "context.plan([context.token_range("
                                "*segment)] * 3"), "0", None, "an example of 3 parts, where its max_parts.. says at most 2"),
    (35, _SENTENCE_TASK.replace("    def num_classes", "    fields = (Field(NAME + '_x', 'int16', EXAMPLE),)\n    def num_classes")
     .replace("SENTENCE, register", "EXAMPLE, SENTENCE, Field, register").replace("NAME", "{name!r}")
     + "    def finish_block(self, block, generator, rng, stats):\n        block[self.name + '_x'] = block[self.name + '_x'][1:]\n",
     "0", None, r"after its finish_block, wrong_35_x must be an array of \d+ values, not \(\d+,\)"),
    (36, _SENTENCE_TASK.replace("    def num_classes", "    fields = (Field(NAME + '_x', 'int8', EXAMPLE),)\n    def num_classes")
     .replace("SENTENCE, register", "EXAMPLE, SENTENCE, Field, register").replace("NAME", "{name!r}")
     + "    def finish_block(self, block, generator, rng, stats):\n        block[self.name + '_x'] = block[self.name + '_x'] + 0.5\n",
     "0", None, r"after its finish_block, wrong_36_x holds float64 values .* where its field stores whole numbers of int8"),
], ids=["label-past-classes", "float-label", "unknown-field", "float-token-labels", "past-int8", "2-d", "no-classes",
        "missing-field", "parts-past-max", "per-example-field-short", "per-example-field-float"])
def test_a_users_task_giving_wrong_labels_is_refused_while_the_shards_are_made(
        custom_root, en_vocab, tmp_path, task_id, template, label_key, values, says):
    """Each was written without a word (a float truncated, a field dropped or left out, a value
    wrapped) or failed as a traceback, in data generation or inside Paddle at training (a sentence
    type past the model's, a field's values in other examples' places)."""
    name = f"wrong_{task_id}"
    text = template.format(name=name, task_id=task_id, label=label_key,
                           key=label_key.replace("NAME", repr(name)), values=values)
    module = tmp_path / f"{name}.py"
    module.write_text(text)
    config = DataConfig(input=[str(custom_root / "corpus.txt")], vocab=str(en_vocab), output=str(tmp_path / "o"),
                        task_modules=[str(module)], tasks=[name], max_seq_len=64, shards=1,
                        stopwords=str(REPO / "configs/stopwords/en.txt"))
    with pytest.raises(registry.TaskError, match=f"task {name} \\({module}\\): .*{says}"):
        make(config, progress=False)


def test_a_task_that_makes_no_examples_is_said_at_make(custom_root, en_vocab, tmp_path, capsys):
    """A typo in segment_example (here: it never makes one) went unseen until training stopped."""
    module = tmp_path / "silent.py"
    module.write_text(_SENTENCE_TASK.format(name="silent", task_id=47, label=0).replace(
        "        return context.plan(", "        return None and context.plan("))
    config = DataConfig(input=[str(custom_root / "corpus.txt")], vocab=str(en_vocab), output=str(tmp_path / "o"),
                        task_modules=[str(module)], tasks=["knowledge_masking", "silent"], max_seq_len=64, shards=1,
                        stopwords=str(REPO / "configs/stopwords/en.txt"))
    make(config, progress=False)
    out, err = capsys.readouterr()
    assert "warning: task silent made no examples from this corpus" in err
    assert "examples of the sentence-level tasks: silent 0" in out
    make(config, progress=False)  # up to date: said again (a rerun that said nothing read as all well)
    out, err = capsys.readouterr()
    assert "up to date" in out and "warning: task silent made no examples from this corpus" in err


def _custom_config(root, en_vocab, output="shards", **options) -> DataConfig:
    """The example's task beside knowledge masking on a small corpus; `options`: next_sentence's."""
    return DataConfig(input=[str(root / "corpus.txt")], vocab=str(en_vocab), output=str(root / output),
                      task_modules=[str(CUSTOM)], tasks=["knowledge_masking", "next_sentence"], max_seq_len=64,
                      shards=2, stopwords=str(REPO / "configs/stopwords/en.txt"),
                      task_options={"next_sentence": {"connectives": str(CONNECTIVES), **options}})


@pytest.fixture(scope="module")
def custom_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("custom")
    (root / "corpus.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(6, 30)), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def custom_shards(custom_root, en_vocab):
    return custom_root, make(_custom_config(custom_root, en_vocab), progress=False)


def test_a_users_task_generates_records_and_decodes(custom_shards):
    root, manifest = custom_shards
    assert manifest["task_table"]["next_sentence"] == {"name": "next_sentence", "task_id": 7, "level": "sentence",
                                                       "fields": [], "module": str(CUSTOM)}
    assert manifest["classes"]["next_sentence"] == 2
    labels = manifest["labels_per_task"]["next_sentence"]
    assert set(labels) == {"0", "1"} and min(labels.values()) > 0
    records = [r for r in inspect(root / "shards", limit=200) if r["task"] == "next_sentence"]
    assert records and {r["label"].split()[1] for r in records} == {"is_next", "random"}
    assert all("knowledge_units" in r for r in records)  # the built-in token task rides on its examples


def test_shards_whose_task_table_differs_are_refused(custom_shards, tmp_path):
    root, _ = custom_shards
    import struct
    import zlib
    shard = next((root / "shards").glob("part-*.shard")).read_bytes()
    # the same shard, its task recorded under another id (a changed module would do the same),
    # its header checksum made to fit
    (length,) = struct.unpack("<I", shard[8:12])
    header = shard[16:16 + length].replace(b'"task_id": 7', b'"task_id": 9')
    (tmp_path / "part-00000.shard").write_bytes(shard[:12] + struct.pack("<I", zlib.crc32(header)) + header
                                                + shard[16 + length:])
    with pytest.raises(ShardError, match="task 'next_sentence' was written with task_id 9.*regenerate"):
        Shard(tmp_path / "part-00000.shard")


def test_a_data_config_naming_a_missing_task_module_is_refused(tmp_path, en_vocab):
    corpus = tmp_path / "c.txt"
    corpus.write_text("A sentence.\n", encoding="utf-8")
    with pytest.raises(DataConfigError, match="task module .*missing.py not found"):
        DataConfig(input=[str(corpus)], vocab=str(en_vocab), output=str(tmp_path / "o"),
                   task_modules=[str(tmp_path / "missing.py")])


def test_a_users_task_pretrains_beside_builtin_ones(custom_shards, tmp_path):
    root, _ = custom_shards
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, use_task_id=True, task_type_vocab_size=8)))
    config = dict(model=str(tmp_path / "model.yaml"), data=str(root / "shards"), output=str(tmp_path / "run"),
                  task_modules=[str(CUSTOM)], seed=1, batch_tokens=512, log_every=5, checkpoint_every=1000,
                  optimization={"learning_rate": 1e-3, "warmup_steps": 5},
                  schedule={"strategy": "continual_multitask", "stages": [["knowledge_masking"], ["next_sentence"]],
                            "iterations_per_task": 15})
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(config))
    listed = subprocess.run([sys.executable, "-m", "ernie.pretrain", "--config", str(tmp_path / "pretrain.yaml"),
                             "--print-schedule", "--json"], capture_output=True, text=True, cwd=REPO)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["tasks"] == ["knowledge_masking", "next_sentence"]
    run = subprocess.run([sys.executable, "-m", "ernie.pretrain", "--config", str(tmp_path / "pretrain.yaml"),
                          "--quiet"], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any("next_sentence/loss" in r for r in log) and "knowledge_masking/loss" in log[-1]
    from ernie.formats.checkpoint import load_params
    params = load_params(tmp_path / "run" / "model" / "params.safetensors")
    assert params["next_sent_fc.w_0"].shape == (32, 2)  # the original name of this task's head


def test_a_run_names_tasks_its_shards_hold_but_its_schedule_leaves_out_and_finds_a_moved_vocabulary(
        custom_shards, en_vocab, tmp_path, capsys):
    import shutil

    from ernie.pretrain.trainer import PretrainError, Trainer, load_config
    root, _ = custom_shards
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, use_task_id=True, task_type_vocab_size=8)))
    config = dict(model=str(tmp_path / "model.yaml"), data=str(root / "shards"), output=str(tmp_path / "run"),
                  task_modules=[str(CUSTOM)], seed=1, batch_tokens=512,
                  schedule={"strategy": "continual", "stages": [["knowledge_masking"]], "iterations_per_task": 2})
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(config))
    Trainer(load_config(tmp_path / "pretrain.yaml"))
    assert "note: the shards hold task(s) ['next_sentence'], which the schedule does not train" in capsys.readouterr().out
    # a manifest's relative vocabulary path is make's working directory's
    shutil.copytree(root / "shards", tmp_path / "moved")
    manifest = json.loads((tmp_path / "moved" / "manifest.json").read_text())
    manifest["vocab"]["path"] = "out/vocab.txt"
    (tmp_path / "moved" / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump({**config, "data": str(tmp_path / "moved")}))
    with pytest.raises(PretrainError, match=r"manifest.json names the vocabulary out/vocab.txt, which is found "
                                            r"neither from .* nor from "):
        Trainer(load_config(tmp_path / "pretrain.yaml"))
    (tmp_path / "made" / "out").mkdir(parents=True)  # the directory make ran in, recorded: found from anywhere
    shutil.copy(en_vocab, tmp_path / "made" / "out" / "vocab.txt")
    manifest["made_in"] = str(tmp_path / "made")
    (tmp_path / "moved" / "manifest.json").write_text(json.dumps(manifest))
    assert Trainer(load_config(tmp_path / "pretrain.yaml")).vocab_file == tmp_path / "made" / "out" / "vocab.txt"


def _token_task_run(root, en_vocab, tmp_path, name, task_id, values, stages):
    """A token-level task of `_TOKEN_TASK` labelling `values`, its shards (with the tasks of
    `stages`) and a pre-training config `tmp_path / "pretrain.yaml"` of `stages`: (module, manifest)."""
    module = tmp_path / f"{name}.py"
    module.write_text(_TOKEN_TASK.format(name=name, task_id=task_id, key=repr(name + "_label"), values=values))
    manifest = make(DataConfig(input=[str(root / "corpus.txt")], vocab=str(en_vocab), output=str(tmp_path / "shards"),
                               task_modules=[str(module)], tasks=[t for stage in stages for t in stage],
                               max_seq_len=64, shards=1), progress=False)
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, use_task_id=True, task_type_vocab_size=64)))
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(dict(
        model=str(tmp_path / "model.yaml"), data=str(tmp_path / "shards"), output=str(tmp_path / "run"),
        task_modules=[str(module)], batch_tokens=512,
        schedule={"strategy": "continual", "stages": stages, "iterations_per_task": 2})))
    return module, manifest


def test_token_labels_past_the_heads_classes_are_refused_before_training(custom_root, en_vocab, tmp_path):
    """A token-level task labelling 0..2 under LinearHead's two classes: `make` writes them, and
    the run failed at the first step of the task's stage, hours in, with `std::exception`."""
    from ernie.pretrain.trainer import PretrainError, Trainer, load_config
    name = "three_labels_51"
    _token_task_run(custom_root, en_vocab, tmp_path, name, 51, "np.arange(n) % 3", [[name]])
    with pytest.raises(PretrainError, match=rf"task {name}'s shards hold token labels up to 2, but its head "
                                            r"\(LinearHead\) predicts 2 classes \(token_classes\)"):
        Trainer(load_config(tmp_path / "pretrain.yaml"))


def test_a_run_says_which_tasks_code_changed_since_its_shards_were_made(custom_root, en_vocab, tmp_path, capsys):
    """The shards' examples are the code's that made them: a task module edited since was trained
    on the old examples without a word."""
    from ernie.pretrain.trainer import Trainer, load_config
    name = "edited_54"
    module, manifest = _token_task_run(custom_root, en_vocab, tmp_path, name, 54, "np.arange(n) % 2",
                                       [["knowledge_masking"], [name]])
    assert set(manifest["task_code"]) == {"knowledge_masking", name}
    capsys.readouterr()
    Trainer(load_config(tmp_path / "pretrain.yaml"))
    assert "changed since" not in capsys.readouterr().out
    module.write_text(module.read_text() + "# labels changed\n")
    Trainer(load_config(tmp_path / "pretrain.yaml"))
    assert (f"note: the code of task(s) ['{name}'] changed since the shards in {tmp_path / 'shards'} were made "
            f"({module}): their examples are the old code's") in capsys.readouterr().out


_CLASHING_HEAD = """
from data_gen.data_task import DataTask
from ernie.pretrain.task_head import LinearHead
from ernie_common.tasks import TOKEN, register
class Borrowed(LinearHead):
    def parameter_names(self):
        return "capitalization_fc.w_0", "capitalization_fc.b_0"
@register(head=Borrowed)
class Borrower(DataTask):
    name, task_id, level, label_fields = "borrower_52", 52, TOKEN, ("borrower_52_label",)
@register(head=LinearHead)
class Pooled(DataTask):
    name, task_id, level, label_fields = "pooled", 53, TOKEN, ("pooled_label",)
"""


def test_a_head_naming_another_tasks_or_the_encoders_parameters_is_refused(tmp_path):
    """Named as capitalization's head, a head trained as one layer with it, without a word; named
    as the encoder's pooler (LinearHead of a task called `pooled`), Paddle refused it naming no task."""
    from ernie.pretrain.model import ErnieForPretraining
    module = tmp_path / "clashing.py"
    module.write_text(_CLASHING_HEAD)
    registry.load_module(str(module))
    config = small_config()
    with pytest.raises(ValueError, match=rf"task borrower_52 \({module}\) names a head parameter "
                                         r"capitalization_fc.w_0, which task capitalization \(.*\) has"):
        ErnieForPretraining(config, {"capitalization": None, "borrower_52": None})
    with pytest.raises(ValueError, match=r"task pooled .* names a head parameter pooled_fc.w_0, which the encoder has"):
        ErnieForPretraining(config, {"pooled": None})
    ErnieForPretraining(config, {"borrower_52": None})  # alone, its names are its own


# ---- options and resources ----------------------------------------------------------------------

def _write_config(tmp_path, en_vocab, task_options) -> str:
    corpus = tmp_path / "c.txt"
    corpus.write_text("A sentence.\n", encoding="utf-8")
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump(dict(input=str(corpus), vocab=str(en_vocab), output=str(tmp_path / "o"),
                                        task_options=task_options)))
    return str(path)


@pytest.mark.parametrize("task_options, message", [
    ({"spelling": {}}, r"task_options: unknown task 'spelling'"),
    ({"sentence_reordering": {"max_segments": 3}},
     r"task_options.sentence_reordering: unknown key\(s\) \['max_segments'\]; known: \['reorder_max_segments'\]"),
    ({"knowledge_masking": {"mask_ratio": "lots"}}, r"task_options.knowledge_masking: mask_ratio must be a number"),
    ({"knowledge_masking": {"masking": "sometimes"}}, r"task_options.knowledge_masking: masking must be online or"),
    ({"sentence_reordering": {"reorder_max_segments": 9}},
     r"task_options.sentence_reordering: reorder_max_segments must be between 1 and 5"),
    ({"discourse_relation": {"discourse_markers": "no/such.yaml"}},
     r"task_options.discourse_relation.discourse_markers: file not found: /.+/no/such.yaml$"),  # the config's folder's
])
def test_task_options_are_checked_by_the_typed_loader(tmp_path, en_vocab, task_options, message):
    path = _write_config(tmp_path, en_vocab, task_options)
    with pytest.raises(DataConfigError, match=f"^{path}: {message}"):
        DataConfig.from_yaml(path)


def test_a_bad_task_option_is_a_one_line_error_of_the_command(tmp_path, en_vocab):
    path = _write_config(tmp_path, en_vocab, {"knowledge_masking": {"mask_ratio": "half"}})
    result = subprocess.run([sys.executable, "-m", "data_gen", "make", "--config", path], capture_output=True,
                            text=True, cwd=REPO)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: task_options.knowledge_masking: mask_ratio must be a number, got 'half'"]


def test_options_reach_the_task_objects_of_each_run(custom_root, en_vocab):
    config = _custom_config(custom_root, en_vocab, swap_probability=0.25)
    tasks = {task.name: task for task in build_tasks(config)}
    assert tasks["next_sentence"].options.swap_probability == 0.25
    assert tasks["knowledge_masking"].options == registry.get("knowledge_masking").options_type()  # defaults
    assert build_tasks(config)[0] is not build_tasks(config)[0]  # built per run, never shared
    # the reader and inspect build theirs from what the manifest records, and old manifests kept
    # a task's options as top-level keys
    recorded = registry.recorded_tasks(registry.resolve(config.tasks), config.to_dict(), "manifest.json")
    assert [t.options for t in recorded] == [config.task_options[t.name] for t in recorded]
    old = registry.recorded_options(registry.get("knowledge_masking"), {"mask_ratio": 0.4, "masking": "online",
                                                                         "seed": 1}, "manifest.json")
    assert (old.mask_ratio, old.masking, old.knowledge_unit_prob) == (0.4, "online", 0.5)


def test_the_examples_option_is_checked_as_a_built_in_one_is(custom_root, en_vocab):
    with pytest.raises(DataConfigError, match="task_options.next_sentence: swap_probability must be between 0 and 1"):
        _custom_config(custom_root, en_vocab, swap_probability=1.5)


def test_the_swap_probability_changes_the_examples(custom_root, en_vocab):
    labels = {p: make(_custom_config(custom_root, en_vocab, f"swap-{p}", swap_probability=p),
                      progress=False)["labels_per_task"]["next_sentence"] for p in (0.1, 0.9)}
    random_share = {p: counts.get("1", 0) / sum(counts.values()) for p, counts in labels.items()}
    # a segment of one sentence has no B of its own: its B is always another document's
    assert random_share[0.1] < 0.5 and random_share[0.9] > 0.9


def test_a_declared_resource_enters_the_fingerprint(custom_root, en_vocab, tmp_path):
    words = tmp_path / "connectives.txt"
    words.write_text(CONNECTIVES.read_text(encoding="utf-8"), encoding="utf-8")
    config = _custom_config(custom_root, en_vocab, connectives=str(words))
    assert config.resources() == [("task_options.next_sentence.connectives", str(words))]
    before = fingerprint(config, config.files)
    assert fingerprint(config, config.files) == before
    words.write_text(words.read_text(encoding="utf-8") + "besides\n", encoding="utf-8")
    assert fingerprint(config, config.files) != before


def test_the_connectives_keep_an_argument_in_one_run(custom_root, en_vocab):
    """The example's resource at work: A is not cut off before a sentence opening with a
    connective while a later sentence of the segment opens otherwise."""
    import numpy as np

    from data_gen.data_task import ChunkContext
    from data_gen.documents import Document, Sentence
    from data_gen.generate import ExampleGenerator
    sentences = [Sentence(text) for text in ("Taxes rose.", "Spending fell.", "However, the deficit grew.",
                                             "The year ended.", "So did the session.")]
    cuts = {}
    for connectives in (str(CONNECTIVES), None):
        generator = ExampleGenerator(_custom_config(custom_root, en_vocab, connectives=connectives), {})
        (task,) = [t for t in generator.tasks if t.name == "next_sentence"]
        chunk = generator.chunk_tokenizer(sentences)
        context = ChunkContext(generator, [Document("d", [sentences])], chunk, chunk, np.array([0, 5]),
                               [[(0, 5)]], [0], None)
        cuts[connectives] = [task.cut(context, 0, 4), task.cut(context, 0, 5), task.cut(context, 3, 5)]
    assert cuts == {str(CONNECTIVES): [3, 3, 4], None: [2, 2, 4]}


_FEEDING_TASK = """
import numpy as np
from data_gen.data_task import DataTask
from ernie.pretrain.task_head import LinearHead
from ernie_common.tasks import TOKEN, register
class Unpooled(LinearHead):
    def loss(self, layer, encoder, sequence, pooled, batch):
        loss, count, correct = super().loss(layer, encoder, sequence, pooled, batch)
        return loss * batch["input_mask"].sum(axis=1), count, correct  # one loss an example
@register(head=LinearHead)
class Mask(DataTask):  # its default feed, mask_label, is knowledge masking's
    name, task_id, level, label_fields = "mask", 38, TOKEN, ("masq_tag",)
@register(head=Unpooled)
class PerExample(DataTask):
    name, task_id, level, label_fields = "per_example_39", 39, TOKEN, ("per_example_39_tag",)
"""


def test_a_tasks_feeds_and_losses_that_do_not_fit_are_refused_naming_the_task(tmp_path):
    """A feed another input has (the run stopped at its first step with `std::exception`), labels
    unlike the task's feed_specs (inside Paddle, after the stages before had trained) and a loss
    that is not one number (at build, in a Paddle stack trace): each a TaskError naming the task."""
    import numpy as np
    import paddle

    from ernie.pretrain.data import _checked_labels
    from ernie.pretrain.model import ErnieForPretraining, feed_specs, pretraining_feeds
    module = tmp_path / "feeding.py"
    module.write_text(_FEEDING_TASK)
    registry.load_module(str(module))
    config = small_config(vocab_size=64, max_position_embeddings=32, use_task_id=True, task_type_vocab_size=64)
    model = ErnieForPretraining(config, {"knowledge_masking": None, "mask": None})
    with pytest.raises(registry.TaskError, match=rf"task mask \({module}\) feeds mask_label, which task "
                                                 r"knowledge_masking \(ernie_tasks.knowledge_masking\) feeds too"):
        feed_specs(model)
    with pytest.raises(registry.TaskError, match=r"task capitalization .* feeds src_ids, which the encoder feeds too"):
        capitalization = registry.get("capitalization")
        original = capitalization.feed_specs
        capitalization.feed_specs = classmethod(lambda cls: {"src_ids": ([-1, -1], "int64")})
        try:
            feed_specs(ErnieForPretraining(config, {"capitalization": None}))
        finally:
            capitalization.feed_specs = original
    masking = registry.get("knowledge_masking")  # feeds mask_pos [-1] and mask_label [-1], int64
    fine = _checked_labels(masking, {"mask_pos": np.arange(3, dtype=np.int32), "mask_label": np.zeros(3, np.int64)})
    assert fine["mask_pos"].dtype == np.int64
    for labels, says in [({"mask_pos": np.arange(3)}, r"must give the feeds of its feed_specs \['mask_label', "
                                                      r"'mask_pos'\], got \['mask_pos'\]"),
                         ({"mask_pos": np.arange(3), "mask_label": np.zeros(3, np.float32)},
                          "mask_label is float32, where its feed_specs say int64"),
                         ({"mask_pos": np.zeros((3, 1), np.int64), "mask_label": np.zeros(3, np.int64)},
                          r"mask_pos has shape \[3, 1\], where its feed_specs say \[-1\]")]:
        with pytest.raises(registry.TaskError, match=rf"task knowledge_masking \(ernie_tasks.knowledge_masking\): "
                                                     rf"batch_labels.*{says}"):
            _checked_labels(masking, labels)
    paddle.enable_static()
    try:
        with paddle.static.program_guard(paddle.static.Program(), paddle.static.Program()):
            model = ErnieForPretraining(config, {"capitalization": None, "per_example_39": None})
            with pytest.raises(registry.TaskError, match=rf"task per_example_39 \({module}\): its head's loss\(\) "
                                                         r"gives a loss of shape \[-1\], where it must be one number"):
                model(pretraining_feeds(model))
    finally:
        paddle.disable_static()


def test_a_task_its_language_cannot_have_is_said_at_make_and_at_pretraining(tmp_path, capsys):
    """Chinese shards leave out capitalization: `make` said nothing, and a schedule training it
    was told only that the shards have no examples of it."""
    from data_gen.make import _print_left_out
    from ernie.pretrain.data import PretrainingData
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(dict(input=[str(tmp_path / "zh.txt")], lang="zh",
                                                            vocab=str(tmp_path / "vocab.txt"), output="o",
                                                            tasks=["knowledge_masking", "capitalization"])))
    config = DataConfig.from_yaml(tmp_path / "data.yaml", check_files=False)
    assert config.tasks == ["knowledge_masking"] and config.tasks_left_out == {"capitalization": ["en"]}
    _print_left_out(config)
    assert capsys.readouterr().out == "left out task capitalization: it is for en text, the corpus is zh\n"
    data = PretrainingData.__new__(PretrainingData)  # what check_tasks reads of the shards
    data.world_size, data.tasks, data.streams = 1, {"knowledge_masking": None}, {"plain": None}
    data.manifest = {"tasks": ["knowledge_masking"], "config": {"lang": "zh"}}
    with pytest.raises(ValueError, match=r"no examples for task\(s\) \['capitalization'\]; .*; capitalization is "
                                         r"for en text, these shards are zh \(make left it out\)"):
        data.check_tasks(["knowledge_masking", "capitalization"])


_HELPED_TASK = """
from data_gen.data_task import DataTask
from ernie.pretrain.task_head import LinearHead
from ernie_common.tasks import SENTENCE, register
from digit_rule_62 import label_of
@register(head=LinearHead)
class Helped(DataTask):
    name, task_id, level, text_task = "helped_62", 62, SENTENCE, True
    def num_classes(self, generator):
        return 2
    def segment_example(self, context, segment, rng, stats):
        return context.plan([context.token_range(*segment)], self, label_of(segment), stats)
"""


def test_a_task_modules_helpers_are_found_beside_it_and_enter_the_fingerprint(custom_root, en_vocab, tmp_path,
                                                                               monkeypatch):
    """A helper module beside a task module was found only when `make` ran from that folder, and
    an edit of it left the shards as they were ("up to date", the labels the old code's). Shards
    made with relative paths are read from any directory: their manifest says where they start."""
    made_in = tmp_path / "project"
    (made_in / "tasks").mkdir(parents=True)
    (made_in / "tasks" / "helped.py").write_text(_HELPED_TASK)
    helper = made_in / "tasks" / "digit_rule_62.py"
    helper.write_text("def label_of(segment):\n    return segment[0] % 2\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(made_in)
    config = DataConfig(input=[str(custom_root / "corpus.txt")], vocab=str(en_vocab), output="shards",
                        task_modules=["tasks/helped.py"], tasks=["knowledge_masking", "helped_62"], max_seq_len=64,
                        shards=1, stopwords=str(REPO / "configs/stopwords/en.txt"))
    task = registry.get("helped_62")
    assert [p.name for p in registry.task_sources(task)] == ["helped.py", "digit_rule_62.py"]
    before = fingerprint(config, config.files)
    manifest = make(config, progress=False)
    helper.write_text("def label_of(segment):\n    return (segment[0] + 1) % 2\n")
    assert fingerprint(config, config.files) != before
    monkeypatch.chdir(tmp_path / "elsewhere")  # a new process reads the shards from another directory
    done = subprocess.run([sys.executable, "-m", "data_gen", "inspect", str(made_in / "shards"), "--limit", "40"],
                          capture_output=True, text=True, cwd=tmp_path / "elsewhere")
    assert done.returncode == 0, done.stderr
    assert manifest["made_in"] == str(made_in) and "helped_62" in done.stdout


def test_a_task_modules_sources_leave_out_what_is_installed_beside_it(tmp_path, monkeypatch):
    """A virtual environment in the task's folder (the README's `.venv` layout) put numpy, and with
    Paddle 1,284 files, into the shards' fingerprint: a pip upgrade made the shards again."""
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "installed_63.py").write_text("VALUE = 1\n")
    (tmp_path / "helper_63.py").write_text("VALUE = 2\n")
    (tmp_path / "sourced.py").write_text(
        "import os, sys\nsys.path.append(os.path.join(os.path.dirname(__file__), 'venv'))\n"
        "import installed_63, helper_63\n" + _HELPED_TASK.replace("from digit_rule_62 import label_of\n", "")
        .replace('"helped_62", 62', '"sourced_63", 63').replace("label_of(segment)", "helper_63.VALUE % 2"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    registry.load_module(str(tmp_path / "sourced.py"))
    assert [p.name for p in registry.task_sources(registry.get("sourced_63"))] == ["sourced.py", "helper_63.py"]
