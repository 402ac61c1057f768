"""Token streams from Flywheel's WebDataset shards, each rank's training sequences, and the shared evaluation.

A shard holds samples `<key>.json` + `<key>.tokens.npy` (1-D uint16 or uint32 token ids, every document ending with
the end-of-text id). Each rank trains on its own part of the training split: whole shards (shards[rank::world], as
webdataset's split_by_node) when there are at least as many shards as ranks, otherwise every world-th sample. The
part's token stream is cut into sequences of n_positions + 1 tokens (consecutive sequences overlap by one token, so
every token is a target once); an epoch visits them in an order drawn from a generator seeded with (seed, epoch,
rank). `Cursor` is where a rank stands (epoch, position); it advances by whole micro-batches and is checkpointed.

`evaluate` scores a token stream the same way for the trainer, evaluate.py and hf_check.py.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
import webdataset as wds

SHARD_SEPARATOR = "::"
EVAL_BATCH = 8


class DataError(Exception):
    """The shards cannot be read or hold too little for the configuration."""


def shard_list(value):
    """FLYWHEEL_*_SHARDS: paths joined with '::' (an empty string is no shard)."""
    return [part for part in (value or "").split(SHARD_SEPARATOR) if part]


def iter_samples(urls):
    """Each sample's tokens (int64), in shard order, read with webdataset's tar reader and .npy decoder."""
    if not urls:
        return
    dataset = wds.WebDataset(urls, shardshuffle=False, empty_check=False, nodesplitter=None).decode()
    for sample in dataset:
        if "tokens.npy" not in sample:
            raise DataError(f"sample {sample.get('__key__')!r} in {sample.get('__url__')} has no tokens.npy")
        tokens = np.asarray(sample["tokens.npy"])
        if tokens.ndim != 1 or tokens.dtype.kind not in "ui":
            raise DataError(
                f"sample {sample.get('__key__')!r} in {sample.get('__url__')}: tokens.npy must be a 1-D integer "
                f"array, got {tokens.dtype} {tokens.shape}"
            )
        yield tokens.astype(np.int64)


def read_stream(urls, limit=None, vocab_size=None):
    """The samples concatenated in shard order; stops once `limit` tokens are read (the stream may be longer)."""
    parts, count = [], 0
    try:
        for tokens in iter_samples(urls):
            parts.append(tokens)
            count += len(tokens)
            if limit is not None and count >= limit:
                break
    except DataError:
        raise
    except Exception as e:  # webdataset raises plain exceptions for unreadable tars
        raise DataError(f"cannot read the shards {urls}: {e}") from e
    stream = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    check_vocab(stream, vocab_size, urls)
    return stream


def check_vocab(tokens, vocab_size, where):
    if vocab_size is not None and len(tokens) and (tokens.max() >= vocab_size or tokens.min() < 0):
        bad = int(tokens.max()) if tokens.max() >= vocab_size else int(tokens.min())
        raise DataError(f"token id {bad} in {where} is outside the vocabulary [0, {vocab_size})")


def rank_stream(urls, rank, world_size, vocab_size=None):
    """This rank's part of the training split as one token stream."""
    try:
        if len(urls) >= world_size:
            parts = list(iter_samples(urls[rank::world_size]))
        else:
            parts = [tokens for i, tokens in enumerate(iter_samples(urls)) if i % world_size == rank]
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"cannot read the shards {urls}: {e}") from e
    stream = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    check_vocab(stream, vocab_size, "the training shards")
    return stream


class Sequences:
    """A rank's token stream cut into sequences of n_positions + 1 tokens (sequence j starts at j * n_positions)."""

    def __init__(self, stream, n_positions):
        self.stream = torch.from_numpy(np.ascontiguousarray(stream, dtype=np.int64))
        self.n_positions = n_positions
        self.count = max(0, (len(stream) - 1) // n_positions)

    def get(self, indices):
        c = self.n_positions
        return torch.stack([self.stream[j * c : j * c + c + 1] for j in indices])


class Cursor:
    """Where a rank stands in its sequences: (epoch, position in that epoch's shuffled order)."""

    def __init__(self, count, seed, rank, epoch=0, position=0):
        self.count, self.seed, self.rank = count, seed, rank
        self.epoch, self.position = epoch, position
        self._order_epoch, self._order = None, None

    def order(self):
        if self._order_epoch != self.epoch:
            generator = np.random.default_rng([self.seed, self.epoch, self.rank])
            self._order, self._order_epoch = generator.permutation(self.count), self.epoch
        return self._order

    def take(self, n):
        """The next n sequence indices; an epoch that runs out continues into the next one."""
        out = []
        for _ in range(n):
            out.append(int(self.order()[self.position]))
            self.position += 1
            if self.position == self.count:
                self.epoch, self.position = self.epoch + 1, 0
        return out

    def state(self):
        return {"epoch": self.epoch, "position": self.position, "sequences": self.count}

    def restore(self, state):
        if state.get("sequences") != self.count:
            raise DataError(
                f"the checkpoint's data cursor for rank {self.rank} was made for {state.get('sequences')} "
                f"sequences, the shards now give {self.count}: not the same training data"
            )
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


@torch.no_grad()
def evaluate(model, tokens, max_tokens, n_positions, device="cpu"):
    """Mean next-token cross-entropy over the first `max_tokens` targets of `tokens`, and how many were scored.

    Window i has inputs t[i*C : i*C+C] and targets t[i*C+1 : i*C+C+1] (C = n_positions); the last window is cut
    short at max_tokens targets or the stream's end. float32, eval mode, losses summed in float64.
    `model(inputs)` returns logits, or an object with `.logits` (a Hugging Face model).
    """
    tokens = torch.as_tensor(np.asarray(tokens, dtype=np.int64))
    scored = max(0, min(int(max_tokens), len(tokens) - 1))
    if scored == 0:
        return math.nan, 0
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    c = n_positions
    full = scored // c
    try:
        starts = list(range(0, full * c, c))
        for b in range(0, len(starts), EVAL_BATCH):
            batch = starts[b : b + EVAL_BATCH]
            x = torch.stack([tokens[s : s + c] for s in batch]).to(device)
            y = torch.stack([tokens[s + 1 : s + c + 1] for s in batch]).to(device)
            total += _loss_sum(model, x, y)
            count += y.numel()
        rest = scored - full * c
        if rest:
            s = full * c
            x = tokens[s : s + rest].unsqueeze(0).to(device)
            y = tokens[s + 1 : s + rest + 1].unsqueeze(0).to(device)
            total += _loss_sum(model, x, y)
            count += y.numel()
    finally:
        model.train(was_training)
    return total / count, count


def _loss_sum(model, x, y):
    out = model(x)
    logits = getattr(out, "logits", out).float()
    losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
    return float(losses.double().sum())
