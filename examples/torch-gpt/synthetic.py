#!/usr/bin/env python3
"""Synthetic WebDataset shards shaped like Flywheel's: documents drawn from a small Markov chain over GPT-2 ids.

`python3 synthetic.py OUT_DIR [--shards N] [--documents-per-shard M] [--seed S] [--prefix train]` writes
OUT_DIR/<prefix>-<i>.tar, each sample `<key>.json` + `<key>.tokens.npy` (uint16, ending with the end-of-text id
50256), and prints the shard paths joined with '::' (as FLYWHEEL_TRAIN_SHARDS holds them). The chain has structure
(each state prefers a few successors), so a model's loss falls well below log(vocabulary).
"""
import argparse
import os

import numpy as np
import webdataset as wds

END_OF_TEXT = 50256


def make_shards(out_dir, shards=2, documents_per_shard=40, seed=0, prefix="train", states=500, length=(40, 400)):
    os.makedirs(out_dir, exist_ok=True)
    chain = np.random.default_rng(1234)  # the same language for every split and seed
    ids = chain.choice(END_OF_TEXT, size=states, replace=False)
    successors = chain.integers(0, states, size=(states, 4))
    weights = np.array([0.6, 0.25, 0.1, 0.05])
    rng = np.random.default_rng([seed, len(prefix)])
    paths = []
    for s in range(shards):
        path = os.path.join(out_dir, f"{prefix}-{s:05d}.tar")
        with wds.TarWriter(path) as sink:
            for d in range(documents_per_shard):
                n = int(rng.integers(*length))
                state = int(rng.integers(states))
                picks = rng.choice(4, size=n, p=weights)
                doc = np.empty(n + 1, dtype=np.uint16)
                for i in range(n):
                    doc[i] = ids[state]
                    state = int(successors[state, picks[i]])
                doc[n] = END_OF_TEXT
                sink.write({"__key__": f"{prefix}-{s:05d}-{d:06d}", "json": {"tokens": n + 1}, "tokens.npy": doc})
        paths.append(path)
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out_dir")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--documents-per-shard", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefix", default="train")
    args = parser.parse_args()
    print("::".join(make_shards(args.out_dir, args.shards, args.documents_per_shard, args.seed, args.prefix)))


if __name__ == "__main__":
    main()
