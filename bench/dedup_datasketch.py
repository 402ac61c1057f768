"""The datasketch side of bench/dedup.bench.ts: the same JSON lines, the same shingles, MinHash + MinHashLSH.

Usage: dedup_datasketch.py INPUT.jsonl THRESHOLD NUM_PERM [SHINGLES.jsonl]

Reads {"id", "text"} lines, normalizes each text the way Flywheel does (lowercase; letters, numbers and marks kept;
whitespace separates words; everything else dropped), makes word 5-grams (a text shorter than 5 words is one shingle),
builds MinHash(num_perm) signatures and a MinHashLSH index with datasketch's own bands for the threshold, queries each
document before inserting it and unions the matches. Prints JSON: seconds (everything after start-up: reading,
parsing, shingling, hashing, LSH), cluster (cluster[i] = earliest document of i's cluster), bands, rows, and with
SHINGLES.jsonl (Flywheel's shingles, one {"shingles": [...]} per document) how many documents got the same set.
"""

import json
import sys
import time
import unicodedata

from datasketch import MinHash, MinHashLSH

NGRAM = 5


def build_table() -> dict:
    """str.translate table: whitespace becomes a space, anything not a letter, number or mark disappears."""
    table = {}
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        if ch.isspace():
            table[cp] = " "
        elif unicodedata.category(ch)[0] not in "LNM":
            table[cp] = None
    return table


def shingles(text: str, table: dict) -> set:
    words = text.lower().translate(table).split()
    if not words:
        return set()
    if len(words) < NGRAM:
        return {" ".join(words)}
    return {" ".join(words[i : i + NGRAM]) for i in range(len(words) - NGRAM + 1)}


def main() -> None:
    path, threshold, num_perm = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    table = build_table()
    started = time.perf_counter()
    with open(path, encoding="utf-8") as f:
        sets = [shingles(json.loads(line)["text"], table) for line in f if line.strip()]
    parent = list(range(len(sets)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    for i, s in enumerate(sets):
        m = MinHash(num_perm=num_perm)
        m.update_batch([x.encode("utf-8") for x in s])
        for j in lsh.query(m):
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
        lsh.insert(i, m)
    seconds = time.perf_counter() - started
    result = {"seconds": seconds, "cluster": [find(i) for i in range(len(sets))], "bands": lsh.b, "rows": lsh.r}
    if len(sys.argv) > 4:
        with open(sys.argv[4], encoding="utf-8") as f:
            theirs = [set(json.loads(line)["shingles"]) for line in f if line.strip()]
        result["sameShingles"] = sum(1 for a, b in zip(sets, theirs) if a == b)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
