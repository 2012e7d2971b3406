"""`python -m data_gen make --config configs/data/NAME.yaml`: corpus -> shards + manifest.json.

Example j of chunk c goes to shard (c + j) mod n: round-robin, starting one shard further at
each chunk, and a function of the corpus and config alone, so the output is the same for a seed
whatever the number of workers. Workers pack each shard's examples into one block, so the main
process only appends bytes. A re-run with the same config, vocabulary, input and code finds the
manifest, verifies every shard's checksum and rewrites only shards that fail.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import multiprocessing
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread per worker process

import numpy as np
from tqdm import tqdm

from ernie_common import tasks as registry
from ernie_common.fileio import atomic_write_text, sha256_file
from ernie_common.tokenization import SPECIAL_TOKENS, TOKENIZER_FILES, load_vocab

from .config import DataConfig
from .documents import Document, read_documents
from .examples import select, task_bit
from .generate import ExampleGenerator
from .shards import FORMAT_VERSION, MANIFEST, Shard, ShardWriter

_generator: Optional[ExampleGenerator] = None


def shard_name(index: int) -> str:
    return f"part-{index:05d}.shard"


def _init_worker(config: DataConfig, states) -> None:
    global _generator
    registry.load_modules(config.task_modules)  # a user's tasks, in this worker too
    _generator = ExampleGenerator(config, states)


def _process(job: Tuple[int, List[Document]]):
    return _dealt(*job, _generator)


def _dealt(chunk_index: int, docs, generator: ExampleGenerator):
    """(one block per shard, stats) for a chunk."""
    block, stats = generator.process_chunk(chunk_index, docs)
    return _deal(block, chunk_index, generator, stats)


def _deal(block, chunk_index: int, generator: ExampleGenerator, stats: Counter):
    _label_counts(block, generator.token_tasks, stats)
    n, n_shards = len(block["lengths"]), generator.config.shards
    return [select(block, np.arange((k - chunk_index) % n_shards, n, n_shards)) for k in range(n_shards)], stats


def _chunks(config: DataConfig, stats: Counter) -> Iterator[Tuple[int, List[Document]]]:
    """Whole documents, about `chunk_bytes` of text a chunk, numbered in corpus order."""
    chunk, size, index = [], 0, 0
    for doc in read_documents(config.input, config.format, config.lang, stats):
        chunk.append(doc)
        size += sum(len(s.text) for s in doc.sentences)
        if size >= config.chunk_bytes:
            yield index, chunk
            chunk, size, index = [], 0, index + 1
    if chunk:
        yield index, chunk


def fingerprint(config: DataConfig) -> str:
    """What the shards are a function of: config, vocabulary, inputs and the generator's code,
    the configured tasks' modules included."""
    digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
    digest.update(f"shard-format-{FORMAT_VERSION}".encode())
    sources = sorted(Path(__file__).parent.rglob("*.py")) + [Path(registry.__file__)]
    sources += [Path(inspect.getfile(type(task))) for task in registry.resolve(config.tasks)]
    for source in sources:
        digest.update(source.read_bytes())
    vocab = Path(config.vocab)
    resources = [vocab, *[vocab.with_name(f) for f in TOKENIZER_FILES if vocab.with_name(f).is_file()], *config.input]
    resources += [p for p in (config.click_log, config.entities, config.stopwords, config.discourse_markers) if p]
    for path in resources:
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def _read_manifest(out: Path) -> Optional[dict]:
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return manifest


def _corpus_states(config: DataConfig) -> dict:
    """What each task computes over the whole corpus before generation (`PretrainingTask.prepare`)."""
    def read_corpus():
        return read_documents(config.input, config.format, config.lang, Counter())
    return {task.name: task.prepare(config, read_corpus) for task in registry.resolve(config.tasks)}


def _label_counts(block, token_tasks, stats: Counter) -> None:
    """Token labels of the examples that carry each token-level task (`PretrainingTask.count_labels`)."""
    carried = np.repeat(block["token_tasks"], block["lengths"])
    for task in token_tasks:
        rows = (carried & np.uint64(task_bit(task.task_id))) > 0
        if rows.any():
            counts = task.count_labels({name: block[name][rows] for name in task.label_fields})
            for label, n in counts.items():
                stats[f"token_labels/{task.name}/{label}"] += n


def unigram_entropy(shard_paths, vocab_size: int, special_ids) -> dict:
    """Entropy in nats of the token frequencies of the shards' text (special tokens left out,
    offline masks undone): the knowledge-masking loss of a model that knows nothing but how
    often each token occurs, the bar a pre-trained encoder must get under."""
    counts = np.zeros(vocab_size, np.int64)
    for path in shard_paths:
        shard = Shard(path)
        shard.verify()  # every byte of a shard just written, before the manifest vouches for it
        ids = shard.array("src_ids").astype(np.int64)
        mask_pos = shard.array("mask_pos")
        if len(mask_pos):  # offline masking: put the original tokens back
            example = np.searchsorted(shard.array("mask_offsets"), np.arange(len(mask_pos)), side="right") - 1
            ids[shard.array("token_offsets")[example] + mask_pos] = shard.array("mask_label")
        ids = ids[~np.isin(ids, list(special_ids))]
        counts += np.bincount(ids, minlength=vocab_size)
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


def make(config: DataConfig, progress: bool = True) -> dict:
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    vocab = load_vocab(config.vocab)
    print(f"data_gen make: {', '.join(config.input)} -> {out} ({config.shards} shards, "
          f"{config.workers} worker(s), tasks: {', '.join(config.tasks)})")
    fp = fingerprint(config)
    old = _read_manifest(out)
    old_shas = {s["file"]: s["sha256"] for s in old["shards"]} if old and old.get("fingerprint") == fp else {}
    verified = {f for f, sha in old_shas.items() if (out / f).is_file() and sha256_file(out / f) == sha}
    if old_shas and len(verified) == len(old_shas):
        print(f"up to date: {len(old_shas)} shards verified against {out / MANIFEST}")
        return old

    started = time.time()
    read_stats: Counter = Counter()
    stats: Counter = Counter()
    states = _corpus_states(config)
    generator = ExampleGenerator(config, states)
    task_table = {task.name: task.spec.to_dict() for task in generator.tasks}
    total_bytes = sum(os.path.getsize(p) for p in config.input)
    writers = [ShardWriter(out / shard_name(k), task_table, generator.label_fields) for k in range(config.shards)]

    def write(blocks, chunk_stats):
        for writer, block in zip(writers, blocks):
            writer.add_block(block)
        stats.update(chunk_stats)
        bar.update(chunk_stats["raw_bytes"])

    jobs = _chunks(config, read_stats)
    bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="make", disable=not progress)
    n_chunks = 0
    if config.workers > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(config.workers, _init_worker, (config, states)) as pool:
            for result in pool.imap(_process, jobs):
                write(*result)
                n_chunks += 1
    else:
        for job in jobs:
            write(*_dealt(*job, generator))
            n_chunks += 1
    bar.close()

    for block, task_stats, why in generator.corpus_examples(n_chunks, read_stats):
        if block is None:
            print(why)
            stats.update(task_stats)
        else:
            write(*_deal(block, n_chunks, generator, task_stats))

    shards = []
    for k, writer in enumerate(writers):
        name = shard_name(k)
        fresh = writer.close(out / f".{name}.new")
        sha = sha256_file(fresh)
        if name in verified and old_shas[name] == sha:
            fresh.unlink()
            stats["shards_kept"] += 1
        else:
            os.replace(fresh, out / name)
        shards.append({"file": name, "sha256": sha, "examples": writer.n_examples,
                       "tokens": writer.n_tokens, "bytes": (out / name).stat().st_size})

    elapsed = time.time() - started
    skipped = {k: v for k, v in read_stats.items()}
    skipped.update({k: stats[k] for k in ("long_sentence_split", "one_sentence_document", "sentence_without_tokens")
                    if stats[k]})
    skipped.update(_nest(stats, "skipped"))  # the tasks' own: `skipped/<reason>`
    unk_rate = stats["unk_tokens"] / max(1, stats["tokens"])
    manifest = {
        "format_version": FORMAT_VERSION,
        "fingerprint": fp,
        "tasks": list(config.tasks),
        "task_table": task_table,
        "classes": {t.name: t.num_classes(generator) for t in generator.tasks if t.level == registry.SENTENCE},
        "vocab": {"path": config.vocab, "sha256": sha256_file(config.vocab), "size": len(vocab)},
        "config": config.to_dict(),
        "examples": sum(w.n_examples for w in writers),
        "examples_per_task": _nest(stats, "examples"),
        "labels_per_task": _nest(stats, "labels"),
        "token_labels": _nest(stats, "token_labels"),
        **{key: value for task in generator.tasks for key, value in task.manifest_entries(generator, stats).items()},
        "corpus": {"documents": stats["documents"], "sentences": stats["sentences"],
                   "tokens": stats["tokens"], "raw_bytes": stats["raw_bytes"], "unk_rate": round(unk_rate, 5)},
        "unigram_entropy": unigram_entropy([out / s["file"] for s in shards], len(vocab),
                                           [vocab[t] for t in SPECIAL_TOKENS]),
        "skipped_or_repaired": skipped,
        "shards": shards,
        "seconds": round(elapsed, 2),
        "mb_per_second": round(stats["raw_bytes"] / 1e6 / max(elapsed, 1e-9), 3),
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    if unk_rate > 0.05:
        print(f"warning: {unk_rate:.1%} of tokens are [UNK]: does {config.vocab} fit this corpus?",
              file=sys.stderr)
    print(f"wrote {manifest['examples']} examples in {config.shards} shards, {stats['raw_bytes'] / 1e6:.1f} MB "
          f"of text in {elapsed:.1f} s; manifest: {out / MANIFEST}")
    return manifest
