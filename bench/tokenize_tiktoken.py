"""Native tiktoken (Rust, through its Python package) on the documents the tokenize benchmark times in Node.

Usage: tokenize_tiktoken.py ENCODING_JSON DOCUMENTS_JSONL

tiktoken's Python package downloads its BPE files on first use, which an offline machine cannot. The encoding is
built here from the same file the `tiktoken` npm package encodes with (its encoders/<name>.json: the ranks, the
pre-tokenization pattern and the special tokens), so both sides run the same tables and the same pattern.

Prints one JSON line: seconds spent encoding (one thread, after one untimed pass), the UTF-8 bytes and tokens
encoded, and the sha256 of every document's ids (u32 little-endian, concatenated) to compare with Node's.
"""

import base64
import hashlib
import json
import sys
import time

import tiktoken


def load_encoding(path: str) -> tiktoken.Encoding:
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    # Lines of "! <first rank> <token base64> <token base64> ...": ranks run on from each line's first.
    ranks = {}
    for line in spec["bpe_ranks"].splitlines():
        parts = line.split()
        if parts[0] != "!":
            raise ValueError(f"{path}: unexpected bpe_ranks layout")
        first = int(parts[1])
        ranks.update({base64.b64decode(token): first + i for i, token in enumerate(parts[2:])})
    return tiktoken.Encoding(
        name=path,
        pat_str=spec["pat_str"],
        mergeable_ranks=ranks,
        special_tokens=spec["special_tokens"],
    )


def main() -> None:
    enc = load_encoding(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    digest = hashlib.sha256()
    tokens = 0
    for text in texts:  # untimed: warms the regex and caches, and gives the ids to compare
        ids = enc.encode_ordinary(text)
        tokens += len(ids)
        digest.update(b"".join(i.to_bytes(4, "little") for i in ids))
    started = time.perf_counter()
    for text in texts:
        enc.encode_ordinary(text)
    seconds = time.perf_counter() - started
    size = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    print(json.dumps({"seconds": seconds, "bytes": size, "tokens": tokens, "sha256": digest.hexdigest()}))


if __name__ == "__main__":
    main()
