"""Export round trips of a fine-tuned model: Paddle inference, ONNX, Hugging Face, hub module."""

import json
import shutil
import sys

import numpy as np
import pytest

from ernie.export import export
from ernie.export import main as export_main
from ernie.finetune.examples import DataError
from ernie.model.config import ErnieConfig
from ernie.predict import Predictor, tsv_output
from ernie.predict import main as predict_main
from ernie.serving.inference_model import inference_program
from tests.test_finetune import finetune_sst2, write_sst2
from tests.test_sentencepiece import en_spm  # noqa: F401  (fixture)

TEXTS = ["war and peace", "the people of the nation", "taxes taxes economy"]


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, init_model):  # noqa: F811
    return finetune_sst2(tmp_path_factory.mktemp("ft"), init_model)


@pytest.fixture(scope="module")
def feeds(finetuned):
    predictor = Predictor(export(finetuned, "paddle-inference", finetuned.parent / "inference"))
    features = predictor.kind.features(predictor.examples(TEXTS), with_labels=False)
    return predictor, predictor.kind.batch(features, task_id=0)


def test_paddle_inference_equals_the_static_program(finetuned, feeds):
    predictor, batch = feeds
    expected = inference_program(finetuned).run(batch)
    got = predictor.run(batch)
    for name in ("logits", "probs"):
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5)
    np.testing.assert_allclose(got["probs"], np.exp(got["logits"]) / np.exp(got["logits"]).sum(-1, keepdims=True),
                               atol=1e-6)
    assert set(batch) >= {"src_ids", "sent_ids", "pos_ids", "input_mask", "task_ids"}
    inputs = ["src_ids", "sent_ids", "pos_ids", "input_mask", "task_ids"]
    assert predictor.predictor.get_input_names() == inputs
    assert predictor.predictor.get_output_names() == ["logits", "probs"]
    signature = json.loads((finetuned.parent / "inference" / "signature.json").read_text())
    assert [i["name"] for i in signature["inputs"]] == inputs
    assert signature["inputs"][3] == {"name": "input_mask", "dtype": "float32", "shape": [-1, -1]}
    assert signature["outputs"] == [{"name": "logits", "dtype": "float32", "shape": [-1, 2]},
                                    {"name": "probs", "dtype": "float32", "shape": [-1, 2]}]


def test_onnx_equals_paddle_inference(finetuned, feeds, tmp_path):
    import onnxruntime
    predictor, batch = feeds
    out = export(finetuned, "onnx", tmp_path / "onnx")
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "probs"]
    logits, probs = session.run(None, {i.name: batch[i.name] for i in session.get_inputs()})
    expected = predictor.run(batch)
    np.testing.assert_allclose(logits, expected["logits"], atol=1e-5)
    np.testing.assert_allclose(probs, expected["probs"], atol=1e-5)
    for name in ("vocab.txt", "finetune.json", "signature.json"):
        assert (out / name).is_file()


def test_hugging_face_classifier_equals_paddle(finetuned, feeds, tmp_path):
    import torch
    from transformers import ErnieForSequenceClassification
    predictor, batch = feeds
    out = export(finetuned, "hf", tmp_path / "hf")
    model = ErnieForSequenceClassification.from_pretrained(str(out)).eval()
    assert model.config.id2label == {0: "0", 1: "1"}
    with torch.no_grad():
        logits = model(input_ids=torch.from_numpy(batch["src_ids"]),
                       token_type_ids=torch.from_numpy(batch["sent_ids"]),
                       attention_mask=torch.from_numpy(batch["input_mask"]).long(),
                       task_type_ids=torch.from_numpy(batch["task_ids"])).logits
    np.testing.assert_allclose(logits.numpy(), predictor.run(batch)["logits"], atol=1e-5)
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    assert tokenizer.model_max_length == model.config.max_position_embeddings
    for text, row, mask in zip(TEXTS, batch["src_ids"], batch["input_mask"]):  # the ids fed above, [CLS]/[SEP] too
        assert tokenizer(text)["input_ids"] == row[mask.astype(bool)].tolist()


def test_hub_module_and_predict_cli(finetuned, feeds, tmp_path, capsys):
    """The hub folder's module.py compiles and does not import this project (PaddleHub itself
    runs it in tests/test_paddle_consumers.py); ernie.predict serves the folder too."""
    predictor, _ = feeds
    out = export(finetuned, "hub", tmp_path / "hub")
    source = (out / "module.py").read_text()
    compile(source, str(out / "module.py"), "exec")
    assert "@moduleinfo(" in source and "import ernie" not in source and "from ernie" not in source
    (tmp_path / "in.tsv").write_text("text_a\n" + "".join(t + "\n" for t in TEXTS))
    assert predict_main(["--model", str(out), "--input", str(tmp_path / "in.tsv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "index\tprediction\t0\t1"
    assert [l.split("\t")[1] for l in lines[1:]] == predictor.predict(TEXTS)


@pytest.mark.parametrize("gpus, use_gpu, selected, device", [(0, None, None, "cpu"), (2, None, None, "gpu 0"),
                                                            (2, None, "1", "gpu 1"), (2, False, None, "cpu")])
def test_the_hub_module_runs_on_a_gpu_where_paddle_has_one(tmp_path, monkeypatch, gpus, use_gpu, selected, device):
    """PaddleHub builds the module where it serves: on a GPU build with GPUs it predicts on the
    launcher's GPU (or the first), unless told not to; without one, on the CPU (Paddle Inference's
    Config recorded by a stand-in, as no GPU is here)."""
    import types

    from ernie.serving.hub_module import module_source
    used = []

    class Config:
        def __init__(self, *files):
            pass

        def enable_use_gpu(self, memory_mb, gpu):
            used.append(f"gpu {gpu}")

        def disable_gpu(self):
            used.append("cpu")

        def __getattr__(self, name):  # the other settings
            return lambda *args: None

    inference = types.SimpleNamespace(Config=Config, create_predictor=lambda config: None)
    fake = {"paddle": types.SimpleNamespace(is_compiled_with_cuda=lambda: gpus > 0, inference=inference,
                                            device=types.SimpleNamespace(cuda=types.SimpleNamespace(
                                                device_count=lambda: gpus))),
            "paddle.inference": inference,
            "paddlehub.module.module": types.SimpleNamespace(moduleinfo=lambda **info: lambda cls: cls,
                                                             serving=lambda f: f),
            "paddlenlp.transformers": types.SimpleNamespace(ErnieTokenizer=lambda *a, **k: None)}
    for name, module in fake.items():
        monkeypatch.setitem(sys.modules, name, module)
    if selected is None:
        monkeypatch.delenv("FLAGS_selected_gpus", raising=False)
    else:
        monkeypatch.setenv("FLAGS_selected_gpus", selected)
    (tmp_path / "finetune.json").write_text(json.dumps({"do_lower_case": True, "labels": ["0", "1"]}))
    namespace = {"__file__": str(tmp_path / "module.py")}
    exec(compile(module_source("m", "s", "classification", False), "module.py", "exec"), namespace)
    namespace["ErnieFinetunedModule"](use_gpu=use_gpu)
    assert used == [device]
    if gpus == 0:
        with pytest.raises(RuntimeError, match="use_gpu=True, but this Paddle build sees no GPU"):
            namespace["ErnieFinetunedModule"](use_gpu=True)


def test_predict_reads_the_files_finetune_reads(finetuned, feeds, tmp_path, capsys):
    """A GLUE test.tsv (index, sentence) and dev.tsv (sentence, label) are read by the task's
    columns: no header row predicted, no index or label taken for a text; the test file's rows
    keep its index, the dev file's are numbered from 0."""
    predictor, _ = feeds
    out = export(finetuned, "paddle-inference", tmp_path / "served")
    data = write_sst2(tmp_path / "SST-2")
    dev = [line.split("\t")[0] for line in (data / "dev.tsv").read_text().splitlines()[1:]]
    test = [line.split("\t")[1] for line in (data / "test.tsv").read_text().splitlines()[1:]]
    for path, sentences, first in ((data / "dev.tsv", dev, 0), (data / "test.tsv", test, 10)):
        assert predict_main(["--model", str(out), "--input", str(path)]) == 0
        rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()[1:]]
        assert [r[1] for r in rows] == predictor.predict(sentences)
        assert [r[0] for r in rows] == [str(first + i) for i in range(len(sentences))]
    (tmp_path / "pairs.tsv").write_text("war and peace\tthe nation\n")
    assert predict_main(["--model", str(out), "--input", str(tmp_path / "pairs.tsv")]) == 2
    assert "pairs.tsv:1: the first line names neither the columns of a SST-2 file, or text_a" in capsys.readouterr().err
    assert predict_main(["--model", str(out), "--input", str(tmp_path / "pairs.tsv"), "--plain"]) == 2
    assert "pairs.tsv:1: a text pair, but the model (SST-2) takes one text an example" in capsys.readouterr().err
    with pytest.raises(DataError, match="takes one text"):
        predictor.predict(TEXTS, TEXTS)


def test_predict_counts_cut_inputs_and_warns_of_torch(finetuned, tmp_path, capsys):
    import torch  # noqa: F401  (in this process, as a service that also serves PyTorch models)
    out = export(finetuned, "paddle-inference", tmp_path / "served")
    with pytest.warns(RuntimeWarning, match="torch is imported in this process"):
        Predictor(out)
    (tmp_path / "in.tsv").write_text("war and peace\n" + "the people of the nation " * 10 + "\n")
    assert predict_main(["--model", str(out), "--input", str(tmp_path / "in.tsv"), "--plain"]) == 0
    assert "1 input(s) longer than the model's 16 tokens were cut to it" in capsys.readouterr().err


def test_predict_names_a_missing_or_broken_export(finetuned, tmp_path, capsys):
    (tmp_path / "x.tsv").write_text("war and peace\n")
    assert predict_main(["--model", str(tmp_path / "nowhere"), "--input", str(tmp_path / "x.tsv")]) == 2
    assert "nowhere: no such directory" in capsys.readouterr().err
    out = export(finetuned, "paddle-inference", tmp_path / "served")
    params = out / "inference.pdiparams"
    params.write_bytes(params.read_bytes()[: params.stat().st_size // 2])
    (tmp_path / "in.tsv").write_text("war and peace\n")
    assert predict_main(["--model", str(out), "--input", str(tmp_path / "in.tsv")]) == 2
    err = capsys.readouterr().err
    assert "inference.pdiparams is not the file the export wrote (truncated, corrupt or replaced" in err
    assert "Traceback" not in err


def test_export_refuses_a_broken_model(tmp_path, finetuned):
    from ernie.formats.checkpoint import CheckpointError
    broken = tmp_path / "broken"
    shutil.copytree(finetuned, broken)
    data = (broken / "params.safetensors").read_bytes()
    (broken / "params.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        export(broken, "paddle-inference", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # an export that could not read text, one that would drop the head, one of fewer layers than it has
    for change, says in [(lambda d: (d / "vocab.txt").unlink(), "has no vocab.txt: a [a-z-]* export reads text with it"),
                         (lambda d: (d / "finetune.json").unlink(),
                          "holds a fine-tuned sentence head .cls_out_w. but no finetune.json"),
                         (lambda d: (d / "ernie_config.json").write_text(json.dumps(
                             {**json.loads((d / "ernie_config.json").read_text()), "num_hidden_layers": 1})),
                          "holds 2 encoder layers, but the config says num_hidden_layers 1")]:
        shutil.rmtree(broken)
        shutil.copytree(finetuned, broken)
        change(broken)
        for fmt in ("paddle-inference", "onnx") + (("hf",) if "layers" in says else ()):
            with pytest.raises(CheckpointError, match=says):
                export(broken, fmt, tmp_path / "out")
        assert not (tmp_path / "out").exists()
    # Hugging Face's directory keeps the head without finetune.json (a converted classifier's round trip)
    shutil.rmtree(broken)
    shutil.copytree(finetuned, broken)
    (broken / "finetune.json").unlink()
    export(broken, "hf", tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["architectures"] == ["ErnieForSequenceClassification"]


def test_export_never_deletes_what_it_did_not_write(tmp_path, finetuned, capsys):
    """An output that is or holds the model, or holds files the export does not write, is refused
    in one line and left as it is; an earlier export of the same format is replaced."""
    model = tmp_path / "run" / "seed-1" / "model"
    shutil.copytree(finetuned, model)
    (tmp_path / "run" / "metrics.json").write_text("{}")
    before = sorted(p.name for p in model.iterdir())
    served, library = tmp_path / "served", tmp_path / "hf"
    for output, fmt in ((served, "paddle-inference"), (served, "paddle-inference"), (library, "hf")):
        assert export_main(["--model", str(model), "--format", fmt, "--output", str(output)]) == 0
    (served / "notes.txt").write_text("mine")
    (library / "README.md").write_text("mine")
    for output, fmt, says in ((model, "paddle-inference", "is the input"), (model.parent.parent, "onnx", "holds the input"),
                              (served, "paddle-inference", "holds notes.txt, which this output does not write"),
                              (library, "hf", "holds README.md")):
        assert export_main(["--model", str(model), "--format", fmt, "--output", str(output)]) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err and err.count("\n") == 1
    assert sorted(p.name for p in model.iterdir()) == before and (tmp_path / "run" / "metrics.json").is_file()
    assert (served / "notes.txt").is_file() and (served / "inference.pdiparams").is_file()
    assert (library / "README.md").is_file() and (library / "config.json").is_file()


def test_predict_input_errors_name_file_and_line(tmp_path):
    from ernie.predict import Inputs, read_inputs
    (tmp_path / "pairs.tsv").write_text("\nfirst\tsecond\n\nonly one\n")
    with pytest.raises(DataError, match=r"pairs.tsv:4: 1 column\(s\) where line 2 has 2"):
        read_inputs(tmp_path / "pairs.tsv", plain=True)
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\ngood\t1\nbad\t0\textra\n")
    from ernie.finetune.tasks import get_task
    with pytest.raises(DataError, match=r"dev.tsv:3: expected 2 tab-separated columns, found 3"):
        read_inputs(tmp_path / "dev.tsv", get_task("SST-2"))
    with pytest.raises(DataError, match=r"pairs.tsv:1: the first line names neither text_a; .* pass --plain"):
        read_inputs(tmp_path / "pairs.tsv")
    (tmp_path / "header.tsv").write_text("label\ttext_a\n1\tgood\n\n0\tbad\n")
    assert read_inputs(tmp_path / "header.tsv") == Inputs(["0", "1", "2"], ["good", "", "bad"], None, blank=1)


def test_predict_gives_every_input_row_its_output_row(finetuned, feeds, tmp_path, capsys):
    """A blank line of a plain or text_a file is an empty text, predicted in its place and counted
    (they were dropped, and the rows after them renumbered)."""
    predictor, _ = feeds
    texts = ["war and peace", "", "the people of the nation", "", "taxes"]
    expected = tsv_output(predictor, predictor.predict(texts), [str(i) for i in range(len(texts))])
    (tmp_path / "plain.txt").write_text("war and peace\n\nthe people of the nation\n  \ntaxes\n")
    (tmp_path / "header.tsv").write_text("text_a\nwar and peace\n\nthe people of the nation\n\ntaxes\n")
    for path, plain in ((tmp_path / "plain.txt", ["--plain"]), (tmp_path / "header.tsv", [])):
        assert predict_main(["--model", str(finetuned.parent / "inference"), "--input", str(path), *plain]) == 0
        out, err = capsys.readouterr()
        assert out == expected
        assert f"note: 2 blank line(s) of {path} predicted as empty texts" in err


@pytest.mark.parametrize("option", ["--batch-size", "--threads"])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_predict_refuses_a_count_below_one(finetuned, feeds, tmp_path, capsys, option, value):
    """A batch size of -1 printed the header alone, 0 a range() traceback."""
    (tmp_path / "in.txt").write_text("war and peace\n")
    with pytest.raises(SystemExit) as exited:
        predict_main(["--model", str(finetuned.parent / "inference"), "--input", str(tmp_path / "in.txt"), "--plain",
                      option, value])
    assert exited.value.code == 2
    assert f"argument {option}: expected a positive integer, got {value}" in capsys.readouterr().err


def _one_line_error(main, argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_predict_refuses_a_vocabulary_the_model_was_not_exported_with(finetuned, tmp_path, capsys):
    """Another vocab.txt of the same size (other ids: wrong answers without a word) fails the
    export's checksums; one of another size (an export whose checksums do not cover it), or none,
    is named in one line, not met as Paddle's index error or a VocabError traceback. Exporting a
    fine-tuned model without its vocab.txt is refused in one line too (it was a TypeError)."""
    out = export(finetuned, "paddle-inference", tmp_path / "served")
    (tmp_path / "in.txt").write_text("war and peace\n")
    argv = ["--model", str(out), "--input", str(tmp_path / "in.txt"), "--plain"]
    vocab = (out / "vocab.txt").read_text().splitlines()
    (out / "vocab.txt").write_text("\n".join(vocab[:5] + vocab[6:] + vocab[5:6]) + "\n")  # one token moved to the end
    assert "vocab.txt is not the file the export wrote" in _one_line_error(predict_main, argv, capsys)
    checksums = json.loads((out / "checksums.json").read_text())
    (out / "checksums.json").write_text(json.dumps({k: v for k, v in checksums.items() if k != "vocab.txt"}))
    (out / "vocab.txt").write_text("\n".join(vocab + [f"extra{i}" for i in range(600)]) + "\n")
    err = _one_line_error(predict_main, argv, capsys)
    assert f"has {len(vocab) + 600} tokens but the model config says vocab_size {len(vocab)}" in err
    (out / "vocab.txt").unlink()
    assert "served/vocab.txt not found" in _one_line_error(predict_main, argv, capsys)
    model = tmp_path / "model"
    shutil.copytree(finetuned, model)
    (model / "vocab.txt").unlink()
    err = _one_line_error(export_main, ["--model", str(model), "--format", "paddle-inference",
                                        "--output", str(tmp_path / "out")], capsys)
    assert "model has no vocab.txt" in err


@pytest.mark.parametrize("change, says", [
    ({"task": "SST2"}, "finetune.json: task: unknown task 'SST2'; choose from CoLA, SST-2"),
    ({"max_seq_len": None}, "finetune.json: missing key(s) ['max_seq_len']"),
    ({"max_seq_len": "long"}, "finetune.json: max_seq_len"),
    ({"task": "MSRA-NER"}, "finetune.json: kind and head: 'classification' and 'sentence', but a MSRA-NER "
                           "model's are 'labelling' and 'token'"),
], ids=["misspelt-task", "missing-key", "wrong-type", "another-kinds-task"])
def test_a_broken_finetune_json_is_named_with_its_key(finetuned, tmp_path, capsys, change, says):
    """Export and predict read finetune.json through one checked reader: a misspelt task or a
    missing key names the file and the key (they were a KeyError traceback)."""
    served = export(finetuned, "paddle-inference", tmp_path / "served")
    model = tmp_path / "model"
    shutil.copytree(finetuned, model)
    for directory in (model, served):
        description = json.loads((directory / "finetune.json").read_text())
        description.update(change)
        (directory / "finetune.json").write_text(json.dumps({k: v for k, v in description.items() if v is not None}))
    (tmp_path / "in.txt").write_text("war and peace\n")
    for fmt in ("paddle-inference", "hub", "hf"):
        assert says in _one_line_error(export_main, ["--model", str(model), "--format", fmt,
                                                     "--output", str(tmp_path / fmt)], capsys)
    assert says in _one_line_error(predict_main, ["--model", str(served), "--input", str(tmp_path / "in.txt"),
                                                  "--plain"], capsys)


def test_a_sentencepiece_models_export_tokenizes_with_its_model(init_model, en_spm, tmp_path):  # noqa: F811
    """The SentencePiece model travels with the export's vocab.txt, under its checksums: without
    it the predictor tokenized with WordPiece, giving other ids and wrong answers without a word."""
    from ernie.formats.checkpoint import load_model_dir, save_model_dir
    from ernie_common.tokenization import SentencePieceTokenizer, load_vocab, make_tokenizer
    config, params, _ = load_model_dir(init_model)
    config = config.replace(vocab_size=len(load_vocab(en_spm)))
    params = {**params, "word_embedding": np.zeros((config.vocab_size, config.hidden_size), np.float32)}
    spm_model = save_model_dir(tmp_path / "spm_model", config, params, en_spm)
    out = export(head_model_dir(spm_model, tmp_path, "SST-2", ["0", "1"]), "paddle-inference", tmp_path / "served")
    assert {"sentencepiece.model", "sentencepiece.json"} <= set(json.loads((out / "checksums.json").read_text()))
    tokenizer = Predictor(out).kind.tokenizer
    assert isinstance(tokenizer, SentencePieceTokenizer)
    assert tokenizer.encode(TEXTS[1]) == make_tokenizer(en_spm).encode(TEXTS[1])


def head_model_dir(init_model, tmp_path, task, labels):
    """`init_model` with a random head of `task`'s kind (its `labels`; none for reading comprehension)."""
    from ernie.finetune import FINETUNE_FILE
    from ernie.finetune.heads import HEAD_PARAMS
    from ernie.finetune.tasks import KINDS, get_task
    from ernie.formats.checkpoint import load_model_dir, save_model_dir
    config, params, vocab = load_model_dir(init_model)
    kind = get_task(task).kind
    head = KINDS[kind].head
    n_outputs = len(labels) or 2
    rng = np.random.default_rng(3)
    weight, bias = HEAD_PARAMS[head]
    params = {**params, weight: rng.normal(0, 0.05, (config.hidden_size, n_outputs)).astype(np.float32),
              bias: rng.normal(0, 0.05, n_outputs).astype(np.float32)}
    description = {"task": task, "kind": kind, "head": head, "labels": labels,
                   "max_seq_len": 32, "do_lower_case": True, "task_id": 0}
    return save_model_dir(tmp_path / "model", config, params, vocab,
                          extra_files={FINETUNE_FILE: json.dumps(description)})


@pytest.mark.parametrize("task, labels, hf_class", [
    ("MSRA-NER", ["B-LOC", "I-LOC", "O"], "ErnieForTokenClassification"),
    ("SQuAD", [], "ErnieForQuestionAnswering"),
])
def test_hugging_face_token_and_span_heads_equal_paddle(init_model, tmp_path, task, labels, hf_class):  # noqa: F811
    """A model with a labelling or reading-comprehension head (random head weights) exported to
    HF: per-token tag probabilities and start/end logits equal the Paddle program's."""
    import torch
    import transformers
    model_dir = head_model_dir(init_model, tmp_path, task, labels)
    config = ErnieConfig.from_file(model_dir / "ernie_config.json")
    rng_ids = np.random.default_rng(4)
    batch = {"src_ids": rng_ids.integers(5, config.vocab_size, (2, 12)).astype(np.int64),
             "sent_ids": np.zeros((2, 12), np.int64), "pos_ids": np.tile(np.arange(12), (2, 1)).astype(np.int64),
             "input_mask": np.ones((2, 12), np.float32), "task_ids": np.zeros((2, 12), np.int64)}
    batch["input_mask"][1, 9:] = 0
    expected = inference_program(model_dir).run(batch)
    model = getattr(transformers, hf_class).from_pretrained(str(export(model_dir, "hf", tmp_path / "hf"))).eval()
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(batch["src_ids"]), token_type_ids=torch.from_numpy(batch["sent_ids"]),
                    attention_mask=torch.from_numpy(batch["input_mask"]).long(),
                    task_type_ids=torch.from_numpy(batch["task_ids"]))
    if labels:
        assert model.config.id2label == dict(enumerate(labels))
        np.testing.assert_allclose(torch.softmax(out.logits, -1).numpy(), expected["probs"], atol=1e-5)
    else:
        np.testing.assert_allclose(out.start_logits.numpy(), expected["start_logits"], atol=1e-5)
        np.testing.assert_allclose(out.end_logits.numpy(), expected["end_logits"], atol=1e-5)


def test_predict_reading_comprehension_from_json_and_tsv(init_model, tmp_path, capsys):  # noqa: F811
    model_dir = head_model_dir(init_model, tmp_path, "SQuAD", [])
    exported = export(model_dir, "paddle-inference", tmp_path / "inference")
    contexts = ["the people of the nation paid taxes", "war and peace and the economy of the people"]
    questions = ["who paid taxes", "what of the people"]
    squad = {"data": [{"paragraphs": [{"context": c, "qas": [{"id": f"q{i}", "question": q, "answers": []}]}
                                      for i, (q, c) in enumerate(zip(questions, contexts))]}]}
    (tmp_path / "dev.json").write_text(json.dumps(squad))
    assert predict_main(["--model", str(exported), "--input", str(tmp_path / "dev.json")]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert sorted(answers) == ["q0", "q1"]
    assert all(answers[f"q{i}"] in contexts[i] for i in range(2))
    (tmp_path / "in.tsv").write_text("text_a\ttext_b\n" + "".join(f"{q}\t{c}\n" for q, c in zip(questions, contexts)))
    assert predict_main(["--model", str(exported), "--input", str(tmp_path / "in.tsv")]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()[1:]]
    assert [row[1] if len(row) > 1 else "" for row in rows] == [answers["q0"], answers["q1"]]
    (tmp_path / "q.tsv").write_text("text_a\n" + "".join(q + "\n" for q in questions))
    assert predict_main(["--model", str(exported), "--input", str(tmp_path / "q.tsv")]) == 2
    assert "needs a question (text_a) and a context (text_b)" in capsys.readouterr().err


def test_pretrained_encoder_export_names_its_outputs(init_model, tmp_path):  # noqa: F811
    import paddle.inference as inference
    out = export(init_model, "paddle-inference", tmp_path / "encoder")
    config = inference.Config(str(out / "inference.json"), str(out / "inference.pdiparams"))
    config.disable_gpu()
    predictor = inference.create_predictor(config)
    assert predictor.get_output_names() == ["sequence_output", "pooled_output"]
    signature = json.loads((out / "signature.json").read_text())
    assert [o["name"] for o in signature["outputs"]] == predictor.get_output_names()
    assert [i["name"] for i in signature["inputs"]] == predictor.get_input_names()
    batch = {"src_ids": np.array([[1, 7, 9, 2]], np.int64), "sent_ids": np.zeros((1, 4), np.int64),
             "pos_ids": np.arange(4, dtype=np.int64)[None], "input_mask": np.ones((1, 4), np.float32),
             "task_ids": np.zeros((1, 4), np.int64)}
    for name in predictor.get_input_names():
        predictor.get_input_handle(name).copy_from_cpu(batch[name])
    predictor.run()
    expected = inference_program(init_model).run(batch)
    for name in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(predictor.get_output_handle(name).copy_to_cpu(), expected[name], atol=1e-5)


def test_predict_reproduces_the_finetune_dev_score_and_submission(finetuned, tmp_path, capsys):
    """`--eval` on the fine-tuning run's own dev file gives its dev score; its test file gives
    the predictions of its submission file."""
    run = finetuned.parent.parent
    data = run.parent / "SST-2"
    report = json.loads((run / "metrics.json").read_text())
    out = export(finetuned, "paddle-inference", tmp_path / "served")
    assert predict_main(["--model", str(out), "--input", str(data / "dev.tsv"), "--eval"]) == 0
    assert f"acc {report['seeds'][0]['dev']['acc']:.4f}" in capsys.readouterr().err
    assert predict_main(["--model", str(out), "--input", str(data / "test.tsv")]) == 0
    predicted = [line.split("\t")[:2] for line in capsys.readouterr().out.splitlines()[1:]]
    submission = [line.split("\t") for line in (run / "seed-1" / "SST-2.tsv").read_text().splitlines()[1:]]
    assert predicted == submission and len(submission) > 1  # the test file's index, 10-14, in both


def test_a_text_a_file_of_a_task_whose_files_are_text_a_files_keeps_its_blank_lines(tmp_path):
    """review-sentiment's own files have a text_a column: such a file was read by the task's reader,
    which drops blank lines (3 lines gave 2 rows, said nowhere)."""
    from ernie.finetune.tasks import get_task
    from ernie.predict import read_inputs
    (tmp_path / "in.tsv").write_text("text_a\tlabel\ngreat food\tpositive\n\nawful\tnegative\n")
    inputs = read_inputs(tmp_path / "in.tsv", task=get_task("review-sentiment"))
    assert (inputs.ids, inputs.texts, inputs.blank) == (["0", "1", "2"], ["great food", "", "awful"], 1)
