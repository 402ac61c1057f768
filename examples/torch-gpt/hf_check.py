#!/usr/bin/env python3
"""Checks a Hugging Face export of a torch-gpt model: loads it with transformers and scores it like evaluate.py.

`python3 hf_check.py --model-dir DIR --shards A.tar::B.tar --tokens N` loads DIR with
transformers.AutoModelForCausalLM.from_pretrained (config.json of a GPT2LMHeadModel, model.safetensors,
generation_config.json), scores the first N next-token targets of the shards' token stream in the same windows as
the trainer's evaluation (data.evaluate, float32) from the Hugging Face model's logits, and prints
{"valLoss":x,"tokens":n,"class":"GPT2LMHeadModel"}. Exits 2 when the directory does not load or the shards are
unreadable.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from data import DataError, evaluate, read_stream, shard_list  # noqa: E402

CONFIG_ERROR = 2


def fail_config(message):
    print(f"hf_check: {message}", file=sys.stderr, flush=True)
    sys.exit(CONFIG_ERROR)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model-dir", required=True, help="a Hugging Face model directory")
    parser.add_argument("--shards", required=True, help="shard paths joined with '::'")
    parser.add_argument("--tokens", type=int, default=20_000, help="next-token targets to score")
    args = parser.parse_args()
    if args.tokens < 1:
        parser.error(f"--tokens must be at least 1, got {args.tokens}")
    import transformers

    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as e:
        fail_config(f"transformers cannot load {args.model_dir}: {e}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    try:
        tokens = read_stream(shard_list(args.shards), limit=args.tokens + 1, vocab_size=model.config.vocab_size)
    except DataError as e:
        fail_config(str(e))
    if len(tokens) < 2:
        fail_config(f"the shards hold {len(tokens)} tokens; at least 2 are needed to score one")
    n_positions = getattr(model.config, "n_positions", None) or model.config.max_position_embeddings
    val_loss, count = evaluate(model, tokens, args.tokens, n_positions, device)
    print(json.dumps({"valLoss": val_loss, "tokens": count, "class": type(model).__name__}), flush=True)


if __name__ == "__main__":
    main()
