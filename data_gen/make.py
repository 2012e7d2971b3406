"""`python -m data_gen make --config configs/data/NAME.yaml`: corpus -> shards + manifest.json.

Example j of chunk c goes to shard (c + j) mod n: round-robin, starting one shard further at
each chunk, and a function of the corpus and config alone, so the output is the same for a seed
whatever the number of workers. Workers pack each shard's examples into one block, so the main
process only appends bytes. A re-run with the same config, vocabulary, input and code finds the
manifest, verifies every shard's checksum and rewrites only shards that fail. Inputs that give
no document are an error, not an empty set of shards; the report printed at the end closes with
what was skipped (input files, lines, records, documents) and why.

A corpus too big for one machine is made in parts: `--prepare` runs the tasks' corpus-wide
statistics once (`corpus_states.json`), each `--part I --parts N` makes the shards of input
files I, I + N, ... with them (shards I * shards ... on, and a part manifest), possibly on N
machines sharing the output directory, and `merge` writes the one manifest training reads.

With `heldout_documents` > 0 the held-out documents' examples (`generate.is_heldout`) go to a
shard of their own per part, `heldout-PART.shard`, which the manifest lists under `heldout`
apart from the training shards; the corpus figures count every document read.
"""
from __future__ import annotations

import gc
import hashlib
import json
import multiprocessing
import os
import signal
import sys
import time
from collections import Counter, deque
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread per worker process

import numpy as np
from tqdm import tqdm

from ernie_common import tasks as registry
from ernie_common.fileio import atomic_write_text, make_output_dir, sha256_file
from ernie_common.tokenization import SPECIAL_TOKENS, TOKENIZER_FILES, UNKNOWN_WARNING, load_vocab

from .config import DataConfig, DataConfigError
from .documents import COMPRESSIONS, CorpusError, Document, Skipped, describe_skipped, warn_layouts
from .examples import of_kind, offsets_of, select, shard_fields, task_bit
from .generate import HELDOUT_STREAM, ExampleGenerator, build_tasks, is_heldout
from .sentences import sentence_length
from .shards import FORMAT_VERSION, MANIFEST, Shard, ShardWriter, every_shard, heldout_shards

_generator: Optional[ExampleGenerator] = None
CORPUS_COUNTS = ("raw_bytes", "documents", "sentences", "tokens", "unk_tokens")  # of every document read
REPAIRS = ("long_sentence_split", "one_sentence_document", "sentence_without_tokens")  # in the report, beside skips
STATES = "corpus_states.json"  # what the tasks' prepare() computed, shared by the parts


def shard_name(index: int) -> str:
    return f"part-{index:05d}.shard"


def heldout_name(part: int) -> str:
    return f"heldout-{part:05d}.shard"


def _init_worker(config: DataConfig, states) -> None:
    global _generator
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which ends the pool: one message
    registry.load_modules(config.task_modules)  # a user's tasks, in this worker too
    _generator = ExampleGenerator(config, states)


def _in_order(pool, jobs, window: int):
    """The results of `_process` over `jobs`, in order, with at most `window` chunks in flight.
    (`Pool.imap` reads its whole input ahead, so the corpus would wait in memory when the workers
    are slower than the reader.)"""
    pending: deque = deque()
    for job in jobs:
        pending.append(pool.apply_async(_process, (job,)))
        if len(pending) >= window:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def _process(job: Tuple[int, List[Document]]):
    return _dealt(*job, _generator)


def _dealt(chunk_index: int, docs, generator: ExampleGenerator):
    """(one block per shard or None, stats, the held-out block or None) for a chunk: its held-out
    documents (`heldout_documents`) are made into examples apart from the others."""
    train, held = generator.split_heldout(docs)
    blocks, stats = None, Counter()
    if train:
        block, stats = generator.process_chunk(chunk_index, train)
        blocks, stats = _deal(block, chunk_index, generator, stats)
    heldout = None
    if held:
        heldout, held_stats = generator.process_chunk(chunk_index, held, HELDOUT_STREAM)
        stats.update({key: n for key, n in held_stats.items()  # the corpus as read, and what was repaired in it
                      if key in CORPUS_COUNTS or key in REPAIRS or key.startswith("skipped/")})
        stats.update({f"heldout/{key}": held_stats[key] for key in ("documents", "tokens")})
    return blocks, stats, heldout


def _deal(block, chunk_index: int, generator: ExampleGenerator, stats: Counter):
    _label_counts(block, generator.token_tasks, stats)
    n, n_shards = len(block["lengths"]), generator.config.shards
    return [select(block, np.arange((k - chunk_index) % n_shards, n, n_shards), generator.fields)
            for k in range(n_shards)], stats


def _chunks(config: DataConfig, inputs: List[str], part: int, parts: int, stats: Counter,
            shape: Counter) -> Iterator[Tuple[int, List[Document]]]:
    """Whole documents, about `chunk_bytes` of text a chunk, in corpus order; part `part` of
    `parts` numbers its chunks part, part + parts, ..., so no two parts seed a chunk alike.
    `shape` counts what the corpus report gives: paragraphs, and words (characters for
    Chinese) of sentences."""
    chunk, size, index = [], 0, 0
    for doc in config.documents(inputs, stats):
        chunk.append(doc)
        size += sum(len(s.text) for s in doc.sentences)
        shape["corpus/paragraphs"] += len(doc.paragraphs)
        shape["corpus/sentence_length"] += sum(sentence_length(s.text, config.lang) for s in doc.sentences)
        if size >= config.chunk_bytes:
            yield index * parts + part, chunk
            chunk, size, index = [], 0, index + 1
    if chunk:
        yield index * parts + part, chunk


def task_code(tasks: Sequence[str]) -> Dict[str, str]:
    """Each task's code, by the sha256 of its module's source, and of its helpers' after it where
    it imports some (`registry.task_sources`): pre-training says which changed since."""
    def digest(task) -> str:
        own, *helpers = registry.task_sources(task)
        if not helpers:
            return sha256_file(own)
        return hashlib.sha256("".join(sha256_file(f) for f in (own, *helpers)).encode()).hexdigest()
    return {task.name: digest(task) for task in registry.resolve(list(tasks))}


def fingerprint(config: DataConfig, inputs: Sequence[str], states_sha: str = "") -> str:
    """What the shards are a function of: config, vocabulary and stop words, the files the
    configured tasks' options name (`DataConfig.resources`), the inputs read (their names, order
    and bytes), the shared corpus states (for a part) and the generator's code, the configured
    tasks' modules included."""
    settings = {k: v for k, v in config.to_dict().items() if k != "workers"}  # the output does not depend on it
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(f"shard-format-{FORMAT_VERSION}{states_sha}".encode())
    sources = sorted(Path(__file__).parent.rglob("*.py")) + [Path(registry.__file__)]
    sources += [f for task in registry.resolve(config.tasks) for f in registry.task_sources(task)]
    for source in sources:
        digest.update(source.read_bytes())
    vocab = Path(config.vocab)
    resources = [vocab, *[vocab.with_name(f) for f in TOKENIZER_FILES if vocab.with_name(f).is_file()]]
    resources += [config.stopwords] if config.stopwords else []
    resources += [path for _, path in config.resources()]
    for path in resources:
        digest.update(sha256_file(path).encode())
    for path in inputs:
        digest.update(f"{path}\0{sha256_file(path)}".encode())
    return digest.hexdigest()


def _read_manifest(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def part_manifest_name(part: int, parts: int) -> str:
    return f"manifest.part-{part:04d}-of-{parts:04d}.json"


def _corpus_states(config: DataConfig) -> dict:
    """What each task computes over the whole corpus before generation (`DataTask.prepare`).

    Then a full garbage collection, for what it empties besides: the interpreter's free lists.
    A pass over the corpus leaves a few thousand freed tuples on them, scattered through the
    memory its counting used, and each keeps the arena it lies in (pymalloc returns an arena
    only when the arena is empty) from going back to the system: on 100 MB of English, 12 MB of
    this process (4 MB on 6 MB), which the workers are forked with. With it, the main process
    holds as much after a pass over 100 MB of text as after one over 6 MB."""
    def read_corpus():  # the documents trained on: a held-out one's phrases or counts are not the tasks' to learn
        return (d for d in config.documents(config.files, Counter())
                if not is_heldout(d, config.heldout_documents, config.seed))
    states = {task.name: task.prepare(config, read_corpus) for task in build_tasks(config)}
    gc.collect()
    return states


def prepare(config: DataConfig) -> Path:
    """Runs every task's `prepare` over the whole corpus once and writes the result for the
    parts (`make_part`) to share: `corpus_states.json` in the output directory."""
    out = make_output_dir(config.output)
    started = time.time()
    states = _corpus_states(config)
    try:
        text = json.dumps({"fingerprint": fingerprint(config, config.files), "states": states}, ensure_ascii=False)
    except TypeError as err:
        raise registry.TaskError(f"a task's prepare() returned what JSON cannot hold, so parts cannot share it: {err}")
    atomic_write_text(out / STATES, text + "\n")
    print(f"wrote {out / STATES} in {time.time() - started:.1f} s")
    return out / STATES


def _load_states(out: Path, config: DataConfig) -> Tuple[dict, str]:
    path = out / STATES
    if not path.is_file():
        raise DataConfigError(f"{path} not found: run `python -m data_gen make --config CONFIG --prepare` once "
                              "before the parts (it computes the corpus statistics every part shares)")
    try:
        states = json.loads(path.read_text())["states"]
    except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as err:
        raise DataConfigError(f"{path} is not a corpus-state file ({err}): run the --prepare step again")
    missing = [t.name for t in registry.resolve(config.tasks) if t.name not in states]
    if missing:
        raise DataConfigError(f"{path} has no state for task(s) {', '.join(missing)}: it was prepared with "
                              "another task list; run the --prepare step again")
    return states, sha256_file(path)


def _label_counts(block, token_tasks, stats: Counter) -> None:
    """Token labels of the examples that carry each token-level task (`DataTask.count_labels`)."""
    carried = np.repeat(block["token_tasks"], block["lengths"])
    for task in token_tasks:
        rows = (carried & np.uint64(task_bit(task.task_id))) > 0
        if rows.any():
            counts = task.count_labels({name: block[name][rows] for name in task.label_fields})
            for label, n in counts.items():
                stats[f"token_labels/{task.name}/{label}"] += n


def unigram_counts(shard_paths, vocab_size: int, special_ids, window: int = 1 << 16) -> np.ndarray:
    """How often each token occurs in the shards' text (special tokens left out, what a task
    replaced put back: `DataTask.restore_tokens`); every byte of each shard is verified on the way, before a manifest vouches for it.
    Shards are read about `window` tokens at a time, so memory does not grow with their size: a
    window's arrays take about 20 bytes a token, and the window is smaller than the shards of a
    small corpus (8 shards of 6 MB of text hold about 370,000 tokens each), so a big corpus
    peaks no higher than a small one."""
    counts = np.zeros(vocab_size, np.int64)
    special = sorted(special_ids)
    for path in shard_paths:
        shard = Shard(path)
        shard.verify()
        tokens = shard.array("token_offsets")
        lists = {f.name: shard.array(offsets_of(f.name)) for f in of_kind(shard.fields, registry.LIST)}
        e0 = 0
        while e0 < len(shard):  # examples [e0, e1): about `window` tokens
            e1 = min(len(shard), max(e0 + 1, int(np.searchsorted(tokens, tokens[e0] + window, side="right")) - 1))
            ids = shard.read("src_ids", tokens[e0], tokens[e1]).astype(np.int64)
            listed = {name: _window_list(shard, name, offsets, tokens, e0, e1) for name, offsets in lists.items()}
            for task in shard.tasks:
                task.restore_tokens(ids, listed)
            counts += np.bincount(ids[~np.isin(ids, special)], minlength=vocab_size)
            e0 = e1
    return counts


def _window_list(shard: Shard, name: str, offsets: np.ndarray, tokens: np.ndarray, e0: int, e1: int):
    """The values of list field `name` over examples [e0, e1) of `shard`, and where each value's
    example starts among those examples' tokens (`DataTask.restore_tokens`)."""
    first, end = offsets[e0], offsets[e1]
    example = np.searchsorted(offsets[e0:e1 + 1], np.arange(first, end), side="right") - 1 + e0
    return shard.read(name, first, end), tokens[example] - tokens[e0]


def unigram_entropy(counts: np.ndarray) -> dict:
    """Entropy in nats of the token frequencies: the knowledge-masking loss of a model that knows
    nothing but how often each token occurs, the bar a pre-trained encoder must get under."""
    p = counts[counts > 0] / max(1, counts.sum())
    return {"nats": round(float(-(p * np.log(p)).sum()), 4), "tokens": int(counts.sum())}


def _nest(stats: Counter, prefix: str) -> dict:
    out: dict = {}
    for key, value in sorted(stats.items()):
        if key.startswith(prefix + "/"):
            *path, leaf = key[len(prefix) + 1:].split("/")
            node = out
            for p in path:
                node = node.setdefault(p, {})
            node[leaf] = value
    return out


def _verified(out: Path, old: Optional[dict], fp: str) -> Dict[str, str]:
    """{file: sha256} of the shards an earlier run with the same fingerprint wrote and that still
    match their checksum."""
    if not old or old.get("fingerprint") != fp:
        return {}
    shas = {s["file"]: s["sha256"] for s in every_shard(old)}
    return {f: sha for f, sha in shas.items() if (out / f).is_file() and sha256_file(out / f) == sha}


def _text_bytes(config: DataConfig, inputs: List[str]) -> Optional[int]:
    """About how much text the inputs hold, for the progress bar: their sizes, or unknown (None)
    where the bytes on disk are compressed."""
    if config.format == "parquet" or any(Path(p).suffix.lower() in COMPRESSIONS for p in inputs):
        return None
    return sum(os.path.getsize(p) for p in inputs)


def _generate(config: DataConfig, states: dict, inputs: List[str], part: int, parts: int,
              verified: Dict[str, str], progress: bool):
    """Writes the shards of `inputs` (part `part` of `parts`, shards numbered from
    part * shards, and its held-out shard); (shard entries, held-out shard entries, generator,
    stats, read stats, unigram counts of the training shards)."""
    out = Path(config.output)
    read_stats: Counter = Counter()
    stats: Counter = Counter()
    shape: Counter = Counter()
    tasks = registry.resolve(config.tasks)
    task_table = {task.name: task.spec.to_dict() for task in tasks}
    names = [shard_name(part * config.shards + k) for k in range(config.shards)]
    writers = [ShardWriter(out / name, task_table, shard_fields(tasks)) for name in names]
    if config.heldout_documents:
        names.append(heldout_name(part))
        writers.append(ShardWriter(out / names[-1], task_table, shard_fields(tasks)))

    def write(blocks, chunk_stats, heldout=None):
        for writer, block in zip(writers, blocks or []):
            writer.add_block(block)
        if heldout is not None:
            writers[-1].add_block(heldout)
        stats.update(chunk_stats)
        bar.update(chunk_stats["raw_bytes"])

    jobs = _chunks(config, inputs, part, parts, read_stats, shape)
    bar = tqdm(total=_text_bytes(config, inputs), unit="B", unit_scale=True, desc="make",
               disable=not progress)
    n_chunks = 0
    if config.workers > 1:  # forked before this process has a generator, which each would hold a copy of
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(config.workers, _init_worker, (config, states)) as pool:
            for result in _in_order(pool, jobs, window=2 * config.workers):
                write(*result)
                n_chunks += 1
    generator = ExampleGenerator(config, states)
    if config.workers == 1:
        for job in jobs:
            write(*_dealt(*job, generator))
            n_chunks += 1
    bar.close()
    if not stats["documents"]:
        raise _no_documents(inputs, read_stats)
    stats.update(shape)

    if part == 0:  # examples from a task's own source (IR's click log) are made once, by the first part
        for block, task_stats, why in generator.corpus_examples(n_chunks * parts, read_stats):
            if block is None:
                print(why)
                stats.update(task_stats)
            else:
                write(*_deal(block, n_chunks * parts, generator, task_stats))

    shards = []
    for name, writer in zip(names, writers):
        fresh = writer.close(out / f".{name}.new")
        sha = sha256_file(fresh)
        if verified.get(name) == sha:
            fresh.unlink()
            stats["shards_kept"] += 1
        else:
            os.replace(fresh, out / name)
        shards.append({"file": name, "sha256": sha, "examples": writer.n_examples,
                       "tokens": writer.n_tokens, "bytes": (out / name).stat().st_size, "streams": writer.streams})
    heldout = shards[config.shards:]
    shards = shards[:config.shards]
    for entry in heldout:  # the training shards are read whole below (unigram_counts); this one is checked here
        Shard(out / entry["file"]).verify()
    vocab = load_vocab(config.vocab)
    counts = unigram_counts([out / s["file"] for s in shards], len(vocab), [vocab[t] for t in SPECIAL_TOKENS])
    return shards, heldout, generator, stats, read_stats, counts


def corpus_figures(stats: Counter, lang: str) -> dict:
    """The corpus as it was read: what a person checks before hours of training (docs/data.md, "Your own corpus")."""
    documents, sentences = stats["documents"], stats["sentences"]
    unit = "characters_per_sentence" if lang == "zh" else "words_per_sentence"
    return {"documents": documents, "paragraphs": stats["corpus/paragraphs"], "sentences": sentences,
            unit: round(stats["corpus/sentence_length"] / max(1, sentences), 1),
            "sentences_per_document": round(sentences / max(1, documents), 1)}


def _counts(counts: dict, prefix: str = "") -> List[str]:
    """`name n` of each count of a (nested) dict of counts, a nested one's name its path."""
    return [item for key, value in sorted(counts.items())
            for item in (_counts(value, f"{prefix}{key}/") if isinstance(value, dict) else [f"{prefix}{key} {value:,}"])]


def _no_documents(inputs: List[str], read_stats: Counter) -> CorpusError:
    """The error of inputs that gave no document: which they are, and what reading them skipped."""
    named = ", ".join(inputs[:3]) + (f" and {len(inputs) - 3} more" if len(inputs) > 3 else "")
    counts = _counts(read_stats)
    why = f"skipped or repaired: {', '.join(counts)}" if counts else "not a line of text"
    return CorpusError(f"no document in {named} ({why}): check the config's format, text_field, layout and encoding")


def _print_left_out(config: DataConfig) -> None:
    """A line for each task of the config that its language cannot have (`DataTask.languages`)."""
    for name, languages in config.tasks_left_out.items():
        print(f"left out task {name}: it is for {', '.join(languages)} text, the corpus is {config.lang}")


def _print_skipped(skipped: Skipped, shown: int = 10) -> None:
    """A line for each of the first `shown` input files left out, with why."""
    for path, why in skipped[:shown]:
        print(f"skipped {path}: {why}")
    if len(skipped) > shown:
        print(f"skipped {len(skipped) - shown} more input files: the manifest's skipped_inputs lists them all")


def report(manifest: dict) -> str:
    """The corpus figures of a manifest in a line, and lines of what was skipped (or repaired)
    and why: input files, then the counts of lines, records and documents."""
    corpus, layout = manifest["corpus"], manifest["config"]["layout"]
    length = corpus.get("words_per_sentence", corpus.get("characters_per_sentence"))
    unit = "words" if "words_per_sentence" in corpus else "characters"
    warned = len(manifest["layout_warnings"])
    lines = [f"corpus{f' (layout {layout})' if layout else ''}: {corpus['documents']:,} documents, "
             f"{corpus['paragraphs']:,} paragraphs, {corpus['sentences']:,} sentences; {length:,} {unit} a sentence, "
             f"{corpus['sentences_per_document']:,} sentences a document"
             + (f"; {warned} layout warning(s), in the manifest's layout_warnings" if warned else "")]
    heldout = manifest.get("heldout")
    if heldout:
        lines.append(f"held out of training: {heldout['documents']:,} documents ({heldout['tokens']:,} tokens, "
                     f"{heldout['examples']:,} examples) in {', '.join(s['file'] for s in heldout['shards'])}, "
                     f"for pre-training's held-out losses")
    made = manifest.get("examples_per_task", {})
    if manifest.get("classes"):  # the sentence-level tasks; every segment carries the token-level ones
        lines.append("examples of the sentence-level tasks: "
                     + ", ".join(f"{name} {made.get(name, 0):,}" for name in manifest["classes"]))
    skipped_inputs = [(s["file"], s["why"]) for s in manifest.get("skipped_inputs", [])]  # older manifests: none
    if skipped_inputs:
        lines.append(f"skipped {len(skipped_inputs)} input file(s): {describe_skipped(skipped_inputs)}")
    counts = _counts(manifest["skipped_or_repaired"])
    if counts:
        lines.append(f"skipped or repaired: {', '.join(counts)}")
    return "\n".join(lines)


def _manifest(config: DataConfig, generator: ExampleGenerator, fp: str, shards: List[dict], heldout: List[dict],
              stats: Counter, read_stats: Counter, counts: np.ndarray, seconds: float, warnings: List[dict]) -> dict:
    skipped = dict(read_stats)
    skipped.update({k: stats[k] for k in REPAIRS if stats[k]})
    skipped.update(_nest(stats, "skipped"))  # the tasks' own: `skipped/<reason>`
    unk_rate = stats["unk_tokens"] / max(1, stats["tokens"])
    manifest = {
        "format_version": FORMAT_VERSION,
        "fingerprint": fp,
        "tasks": list(config.tasks),
        "task_table": {task.name: task.spec.to_dict() for task in generator.tasks},
        "task_code": task_code(config.tasks),
        "classes": generator.classes,
        "vocab": {"path": config.vocab, "sha256": sha256_file(config.vocab), "size": len(load_vocab(config.vocab))},
        "config": config.to_dict(),
        "made_in": os.getcwd(),  # where the config's relative paths start (`shards.recorded_path`)
        "examples": sum(s["examples"] for s in shards),
        "examples_per_task": _nest(stats, "examples"),
        "labels_per_task": _nest(stats, "labels"),
        "token_labels": _nest(stats, "token_labels"),
        **{key: value for task in generator.tasks for key, value in task.manifest_entries(generator, stats).items()},
        "inputs": list(config.files),
        "skipped_inputs": [{"file": path, "why": why} for path, why in config.skipped_files],
        "layout_warnings": warnings,
        "corpus": {**corpus_figures(stats, config.lang), "tokens": stats["tokens"], "raw_bytes": stats["raw_bytes"],
                   "unk_rate": round(unk_rate, 5)},
        "unigram_entropy": unigram_entropy(counts),
        "skipped_or_repaired": skipped,
        "shards": shards,
        **({"heldout": {"share": config.heldout_documents, "documents": stats["heldout/documents"],
                        "tokens": stats["heldout/tokens"], "examples": sum(s["examples"] for s in heldout),
                        "shards": heldout}} if config.heldout_documents else {}),
        "seconds": round(seconds, 2),
        "mb_per_second": round(stats["raw_bytes"] / 1e6 / max(seconds, 1e-9), 3),
    }
    atomic_write_text(Path(config.output) / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    _print_warnings(manifest)
    print(f"wrote {manifest['examples']} examples in {len(shards)} shards, {stats['raw_bytes'] / 1e6:.1f} MB "
          f"of text in {seconds:.1f} s; manifest: {Path(config.output) / MANIFEST}")
    print(report(manifest))
    return manifest


def make(config: DataConfig, progress: bool = True) -> dict:
    """The whole corpus on this machine: corpus states, shards and manifest."""
    out = make_output_dir(config.output)
    print(f"data_gen make: {', '.join(config.input)} ({len(config.files)} file(s)) -> {out} ({config.shards} shards, "
          f"{config.workers} worker(s), tasks: {', '.join(config.tasks)})")
    _print_left_out(config)
    _print_skipped(config.skipped_files)
    warnings = warn_layouts(config.files, config.reading())
    fp = fingerprint(config, config.files)
    old = _read_manifest(out / MANIFEST)
    verified = _verified(out, old, fp)
    if verified and len(verified) == len(every_shard(old)):
        print(f"up to date: {len(verified)} shards verified against {out / MANIFEST}")
        _remove_unlisted_shards(out, old)
        _print_warnings(old)
        print(report(old))
        return old
    # the shards are about to be replaced: a run stopped before the new manifest is written
    # must not leave new shards under the old one (the reader would trust its description)
    (out / MANIFEST).unlink(missing_ok=True)
    started = time.time()
    shards, heldout, generator, stats, read_stats, counts = _generate(config, _corpus_states(config),
                                                                      list(config.files), 0, 1, verified, progress)
    manifest = _manifest(config, generator, fp, shards, heldout, stats, read_stats, counts, time.time() - started,
                         warnings)
    _remove_unlisted_shards(out, manifest)
    return manifest


def _print_warnings(manifest: dict) -> None:
    """What a user should know of shards before hours of training, from their manifest: on every
    make, an up-to-date one too (a rerun that said nothing read as all well)."""
    unk_rate, config = manifest["corpus"]["unk_rate"], manifest["config"]
    if unk_rate > UNKNOWN_WARNING:
        print(f"warning: {unk_rate:.1%} of tokens are [UNK]: does {config['vocab']} fit this corpus?", file=sys.stderr)
    if "heldout" in manifest and not manifest["heldout"]["documents"]:
        print(f"warning: heldout_documents {manifest['heldout']['share']} chose none of the "
              f"{manifest['corpus']['documents']:,} documents: no held-out examples (a larger share, or a corpus of "
              f"more documents)", file=sys.stderr)
    for name in (n for n in manifest["classes"] if not manifest["examples_per_task"].get(n)):
        print(f"warning: task {name} made no examples from this corpus (no document had what it needs, or the skip "
              f"counts below say why): pre-training refuses a schedule that trains it on these shards", file=sys.stderr)


def _remove_unlisted_shards(out: Path, manifest: dict) -> None:
    """The shards of the folder that its new manifest does not list go: an earlier make of more
    shards (or of parts) left them, gigabytes at a corpus's size, which no reader takes. (A
    part's make leaves them: the other parts' shards lie there too.)"""
    listed = {s["file"] for s in every_shard(manifest)}
    stale = sorted(p for p in out.glob("*.shard") if p.name not in listed)
    for path in stale:
        path.unlink()
    if stale:
        print(f"removed {len(stale)} shard(s) an earlier make left that the manifest does not list "
              f"({stale[0].name}{', ...' if len(stale) > 1 else ''})")


def part_inputs(config: DataConfig, part: int, parts: int) -> List[str]:
    """Part `part` of `parts` reads input files part, part + parts, ... of the config's list."""
    if not 0 <= part < parts:
        raise DataConfigError(f"--part {part} is not one of 0..{parts - 1} (--parts {parts})")
    if parts > len(config.files):
        raise DataConfigError(f"--parts {parts} is more than the {len(config.files)} input file(s) of the "
                              "config: split the corpus into at least as many files as parts")
    return list(config.files[part::parts])


def make_part(config: DataConfig, part: int, parts: int, progress: bool = True) -> dict:
    """Shards of one part of the input files, with the corpus states `prepare` wrote; its own
    manifest (`manifest.part-I-of-N.json`) is what `merge` reads."""
    out = Path(config.output)
    inputs = part_inputs(config, part, parts)
    states, states_sha = _load_states(out, config)
    print(f"data_gen make part {part} of {parts}: {len(inputs)} input file(s) -> {out} ({config.shards} shards)")
    _print_left_out(config)
    warnings = warn_layouts(inputs, config.reading())
    fp = fingerprint(config, inputs, states_sha)
    path = out / part_manifest_name(part, parts)
    old = _read_manifest(path)
    verified = _verified(out, old, fp)
    if verified and len(verified) == len(every_shard(old)):
        print(f"up to date: {len(verified)} shards verified against {path}")
        return old
    # as in `make`: neither this part's manifest nor a merged one may describe shards being replaced
    path.unlink(missing_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    started = time.time()
    shards, heldout, _, stats, read_stats, counts = _generate(config, states, inputs, part, parts, verified, progress)
    record = {"part": part, "parts": parts, "fingerprint": fp,
              "shared": fingerprint(config, [], states_sha), "inputs": inputs, "shards": shards,
              **({"heldout": {"shards": heldout}} if config.heldout_documents else {}),
              "stats": dict(stats), "read_stats": dict(read_stats),
              "unigram_counts": {str(i): int(n) for i, n in enumerate(counts) if n},
              "layout_warnings": warnings, "seconds": round(time.time() - started, 2)}
    atomic_write_text(path, json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote part {part} of {parts}: {sum(s['examples'] for s in shards)} examples, {path}")
    return record


def merge(config: DataConfig) -> dict:
    """One manifest over the shards every part wrote: checks that all parts are there, made
    from the same config, code, vocabulary and corpus states, and sums their counts."""
    out = Path(config.output)
    found = sorted(out.glob("manifest.part-*-of-*.json"))
    if not found:
        raise DataConfigError(f"no part manifests (manifest.part-*-of-*.json) in {out}: run the parts first")
    records = []
    for path in found:
        record = _read_manifest(path)
        if record is None:
            raise DataConfigError(f"{path}: not a readable part manifest; run that part again")
        records.append(record)
    parts = {r["parts"] for r in records}
    if len(parts) > 1:
        raise DataConfigError(f"{out} holds parts of different splits ({sorted(parts)} parts): remove the stale "
                              "manifest.part-*.json files")
    n = parts.pop()
    missing = sorted(set(range(n)) - {r["part"] for r in records})
    if missing:
        raise DataConfigError(f"part(s) {', '.join(map(str, missing))} of {n} not made yet in {out}")
    states, states_sha = _load_states(out, config)
    shared = fingerprint(config, [], states_sha)
    stale = [r["part"] for r in records if r["shared"] != shared]
    if stale:
        raise DataConfigError(f"part(s) {', '.join(map(str, stale))} in {out} were made with another config, "
                              "vocabulary, code or corpus states: make them again")
    for record in records:  # each shard the one its part wrote: a make into the same folder since replaces them
        for shard in every_shard(record):
            if not (out / shard["file"]).is_file():
                raise DataConfigError(f"{out / shard['file']} of part {record['part']} is missing: make the part again")
            if sha256_file(out / shard["file"]) != shard["sha256"]:
                raise DataConfigError(f"{out / shard['file']} is not the shard part {record['part']} wrote (its sha256 "
                                      f"differs: written again since, by another make into {out}?): make the part again")
    records.sort(key=lambda r: r["part"])
    # each input read once by exactly one part: parts made while the input list changed (a file
    # added to a folder between them) would have read some files twice and others never
    changed = [r["part"] for r in records if r["inputs"] != part_inputs(config, r["part"], n)]
    if changed:
        raise DataConfigError(f"part(s) {', '.join(map(str, changed))} in {out} read other input files than "
                              f"the config lists now (files added, removed or renamed since): make them again")
    stats, read_stats = Counter(), Counter()
    generator = ExampleGenerator(config, states)
    counts = np.zeros(len(load_vocab(config.vocab)), np.int64)
    for record in records:
        stats.update(record["stats"])
        read_stats.update(record["read_stats"])
        for token, k in record["unigram_counts"].items():
            counts[int(token)] += k
    fp = hashlib.sha256("".join(r["fingerprint"] for r in records).encode()).hexdigest()
    shards = [s for r in records for s in r["shards"]]
    heldout = [s for r in records for s in heldout_shards(r)]
    warnings = [w for r in records for w in r["layout_warnings"]]
    return _manifest(config, generator, fp, shards, heldout, stats, read_stats, counts,
                     sum(r["seconds"] for r in records), warnings)
