#!/usr/bin/env python3
"""Flywheel's evaluation command for torch-gpt models: scores registered model files on a set of shards.

Reads FLYWHEEL_EVAL_WEIGHTS_DIR (model.safetensors + model-config.json, as the trainer's checkpoints hold them),
FLYWHEEL_EVAL_SHARDS (shard paths joined with '::'), FLYWHEEL_EVAL_TOKENS (default 20000) and, when set,
FLYWHEEL_VOCAB_SIZE (must equal the model's vocabulary). Scores the first FLYWHEEL_EVAL_TOKENS next-token targets of
the shards' token stream with the trainer's own `evaluate` (data.py) and prints one line,
{"event":"eval","valLoss":x,"tokens":n}. One process, on CUDA when there is one. Bad configuration (missing or
unreadable files, another architecture, shapes that do not match) prints {"event":"fatal","message":...} on stdout
and the message on stderr, and exits 2.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from data import DataError, evaluate, read_stream, shard_list  # noqa: E402
from model import GPT, ModelFilesError, load_model_files, read_model_config  # noqa: E402

CONFIG_ERROR = 2


def fail_config(message):
    """Bad configuration: a {"event":"fatal","message":...} line on stdout (Flywheel does not retry), stderr, exit 2."""
    print(json.dumps({"event": "fatal", "message": message}), flush=True)
    print(f"torch-gpt evaluate: {message}", file=sys.stderr, flush=True)
    sys.exit(CONFIG_ERROR)


def env_int(name, default=None):
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        fail_config(f"{name} must be an integer, got {value!r}")
    if number < 1:
        fail_config(f"{name} must be at least 1, got {number}")
    return number


def main():
    argparse.ArgumentParser(description=__doc__.split("\n", 1)[0]).parse_args()
    folder = os.environ.get("FLYWHEEL_EVAL_WEIGHTS_DIR") or fail_config("FLYWHEEL_EVAL_WEIGHTS_DIR is not set")
    urls = shard_list(os.environ.get("FLYWHEEL_EVAL_SHARDS"))
    if not urls:
        fail_config("FLYWHEEL_EVAL_SHARDS names no shard")
    missing = [u for u in urls if not os.path.isfile(u)]
    if missing:
        fail_config(f"shard {missing[0]} does not exist")
    max_tokens = env_int("FLYWHEEL_EVAL_TOKENS", 20_000)
    vocab_size = env_int("FLYWHEEL_VOCAB_SIZE")
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        config = read_model_config(folder)
        if vocab_size is not None and vocab_size != config.vocab_size:
            fail_config(f"the model's vocabulary has {config.vocab_size} ids, FLYWHEEL_VOCAB_SIZE is {vocab_size}")
        model = GPT(config)
        load_model_files(folder, model)
    except ModelFilesError as e:
        fail_config(str(e))
    model.to(device)
    try:
        tokens = read_stream(urls, limit=max_tokens + 1, vocab_size=config.vocab_size)
    except DataError as e:
        fail_config(str(e))
    if len(tokens) < 2:
        fail_config(f"the shards hold {len(tokens)} tokens; at least 2 are needed to score one")
    val_loss, count = evaluate(model, tokens, max_tokens, config.n_positions, device)
    print(json.dumps({"event": "eval", "valLoss": val_loss, "tokens": count}), flush=True)


if __name__ == "__main__":
    main()
