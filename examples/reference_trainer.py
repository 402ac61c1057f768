#!/usr/bin/env python3
"""Reference external trainer for Flywheel: a tiny next-token model in numpy, trained on Flywheel's WebDataset shards.

It keeps the whole contract an external trainer (a torchrun or deepspeed script) keeps with Flywheel:
  * reads the shards named by FLYWHEEL_TRAIN_SHARDS and FLYWHEEL_VALIDATION_SHARDS with the `webdataset` library;
  * resumes from the folder given as --resume (also FLYWHEEL_RESUME_DIR) when Flywheel restored a checkpoint;
  * trains until FLYWHEEL_UNTIL_STEP, printing one JSON line per step, evaluation and checkpoint, then "done";
  * writes each checkpoint completely into FLYWHEEL_CHECKPOINT_DIR/step-<N>/ before printing its event;
  * on SIGTERM, checkpoints where it stands and exits; exits 2 on bad configuration (as argparse does).

The model predicts the next token as softmax(E[token] @ W + b) over the --max-vocab most frequent training tokens
(one more id stands for the rest), trained with Adam on batches drawn by a generator seeded with (seed, step): a
run that crashed and resumed reaches the same weights as one that did not.

Switches for tests (environment): REFERENCE_TRAINER_CRASH_AT_STEP=N with REFERENCE_TRAINER_CRASH_MARKER=PATH kills
the trainer with SIGKILL after step N once (the marker file remembers it happened); REFERENCE_TRAINER_STEP_SECONDS
sleeps after every step; REFERENCE_TRAINER_HELPER=1 starts a helper process that ignores SIGTERM, as a launcher's
stray worker would.
"""
import argparse
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import webdataset as wds

CONFIG_ERROR = 2


def fail_config(message):
    print(f"reference_trainer: {message}", file=sys.stderr, flush=True)
    sys.exit(CONFIG_ERROR)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seed", type=int, default=0, help="seeds initialization and batches")
    parser.add_argument("--dim", type=int, default=16, help="embedding width")
    parser.add_argument("--max-vocab", type=int, default=512, help="most frequent tokens modelled (+1 for the rest)")
    parser.add_argument("--batch", type=int, default=64, help="token pairs per step")
    parser.add_argument("--lr", type=float, default=0.05, help="peak Adam learning rate (cosine decay)")
    parser.add_argument("--resume", help="checkpoint folder to resume from (Flywheel passes it)")
    args = parser.parse_args()
    for name in ("dim", "max_vocab", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not args.lr > 0:
        parser.error(f"--lr must be positive, got {args.lr}")
    return args


def env_int(name, default=None):
    value = os.environ.get(name)
    if value is None:
        if default is None:
            fail_config(f"{name} is not set; start this trainer through a Flywheel training spec's `external`")
        return default
    try:
        return int(value)
    except ValueError:
        fail_config(f"{name} must be an integer, got {value!r}")


class Protocol:
    """Progress lines for Flywheel: stdout, or FLYWHEEL_PROGRESS_FILE when the spec reports to a file."""

    def __init__(self):
        path = os.environ.get("FLYWHEEL_PROGRESS_FILE")
        self.out = open(path, "a", encoding="utf-8") if path else sys.stdout

    def emit(self, **event):
        self.out.write(json.dumps(event) + "\n")
        self.out.flush()


def read_tokens(urls):
    """Every sample's tokens in shard order, read with webdataset's own tar reader and .npy decoder."""
    if not urls:
        return np.zeros(0, dtype=np.int64)
    dataset = wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode()
    parts = [np.asarray(sample["tokens.npy"], dtype=np.int64) for sample in dataset]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def build_vocab(tokens, max_vocab):
    counts = np.bincount(tokens)
    order = np.argsort(-counts, kind="stable")[:max_vocab]
    return order[counts[order] > 0]


def to_ids(tokens, vocab):
    lookup = np.full(int(max(vocab.max(), tokens.max(initial=0))) + 1, len(vocab), dtype=np.int64)
    lookup[vocab] = np.arange(len(vocab))
    return lookup[tokens]


class Model:
    NAMES = ("E", "W", "b")

    def __init__(self, vocab_size, dim, seed):
        rng = np.random.default_rng(seed)
        self.params = {
            "E": rng.normal(0.0, 0.1, (vocab_size, dim)),
            "W": rng.normal(0.0, 0.1, (dim, vocab_size)),
            "b": np.zeros(vocab_size),
        }
        self.m = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.params.items()}

    def loss_and_grads(self, x, y):
        E, W, b = (self.params[k] for k in self.NAMES)
        h = E[x]
        logits = h @ W + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        rows = np.arange(len(x))
        loss = float(-np.log(p[rows, y]).mean())
        g = p
        g[rows, y] -= 1.0
        g /= len(x)
        grad_e = np.zeros_like(E)
        np.add.at(grad_e, x, g @ W.T)
        return loss, {"E": grad_e, "W": h.T @ g, "b": g.sum(axis=0)}

    def adam(self, grads, lr, t, beta1=0.9, beta2=0.99, eps=1e-8):
        for k, g in grads.items():
            self.m[k] = beta1 * self.m[k] + (1 - beta1) * g
            self.v[k] = beta2 * self.v[k] + (1 - beta2) * g * g
            m_hat = self.m[k] / (1 - beta1**t)
            v_hat = self.v[k] / (1 - beta2**t)
            self.params[k] -= lr * m_hat / (np.sqrt(v_hat) + eps)

    def evaluate(self, ids, max_tokens):
        x, y = ids[:-1][:max_tokens], ids[1:][: max_tokens]
        total = 0.0
        for i in range(0, len(x), 4096):
            h = self.params["E"][x[i : i + 4096]]
            logits = h @ self.params["W"] + self.params["b"]
            top = logits.max(axis=1, keepdims=True)
            log_z = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
            total += float((log_z - logits[np.arange(len(h)), y[i : i + 4096]]).sum())
        return total / len(x)

    def weights_sha256(self):
        return hashlib.sha256(b"".join(self.params[k].tobytes() for k in self.NAMES)).hexdigest()

    def arrays(self):
        out = dict(self.params)
        out.update({f"m_{k}": v for k, v in self.m.items()})
        out.update({f"v_{k}": v for k, v in self.v.items()})
        return out

    def load(self, arrays):
        for k in self.NAMES:
            if arrays[k].shape != self.params[k].shape:
                fail_config(f"the checkpoint's {k} has shape {arrays[k].shape}, this model {self.params[k].shape}")
            self.params[k] = arrays[k].copy()
            self.m[k] = arrays[f"m_{k}"].copy()
            self.v[k] = arrays[f"v_{k}"].copy()


def exit_when_worker_is_gone():
    """Flywheel keeps our stdin open while its worker lives: EOF means it died, and nobody reads our progress."""

    def watch():
        # os.read, not sys.stdin: a thread blocked in Python's buffered reader would hang interpreter shutdown.
        while os.read(0, 1 << 16):
            pass
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def main():
    args = parse_args()
    if os.environ.get("FLYWHEEL_TRAINER_ID"):
        exit_when_worker_is_gone()
    checkpoint_dir = os.environ.get("FLYWHEEL_CHECKPOINT_DIR") or fail_config("FLYWHEEL_CHECKPOINT_DIR is not set")
    until = env_int("FLYWHEEL_UNTIL_STEP")
    total = env_int("FLYWHEEL_TOTAL_STEPS", until)
    checkpoint_every = env_int("FLYWHEEL_CHECKPOINT_EVERY", until)
    eval_every = env_int("FLYWHEEL_EVAL_EVERY", until)
    eval_tokens = env_int("FLYWHEEL_EVAL_TOKENS", 20_000)
    crash_at = env_int("REFERENCE_TRAINER_CRASH_AT_STEP", 0)
    crash_marker = os.environ.get("REFERENCE_TRAINER_CRASH_MARKER")
    step_seconds = float(os.environ.get("REFERENCE_TRAINER_STEP_SECONDS", "0"))
    protocol = Protocol()

    terminated = []
    signal.signal(signal.SIGTERM, lambda *_: terminated.append(True))
    if os.environ.get("REFERENCE_TRAINER_HELPER") == "1":
        subprocess.Popen(["sh", "-c", 'trap "" TERM; sleep 600'])

    train = read_tokens(os.environ.get("FLYWHEEL_TRAIN_SHARDS", ""))
    if len(train) < 2:
        fail_config(f"the training split has {len(train)} tokens; at least 2 are needed")
    validation = read_tokens(os.environ.get("FLYWHEEL_VALIDATION_SHARDS", ""))
    vocab = build_vocab(train, args.max_vocab)
    train_ids = to_ids(train, vocab)
    val_ids = to_ids(validation, vocab) if len(validation) >= 2 else train_ids
    model = Model(len(vocab) + 1, args.dim, args.seed)

    step = 0
    resume = args.resume or os.environ.get("FLYWHEEL_RESUME_DIR")
    if resume:
        with open(os.path.join(resume, "state.json"), encoding="utf-8") as f:
            state = json.load(f)
        if state["seed"] != args.seed or state["maxVocab"] != args.max_vocab:
            fail_config(f"the checkpoint in {resume} was trained with other settings: {state}")
        with np.load(os.path.join(resume, "model.npz")) as arrays:
            if not np.array_equal(arrays["vocab"], vocab):
                fail_config("the checkpoint was trained on another vocabulary (another dataset?)")
            model.load(arrays)
        step = state["step"]

    def epoch_of(s):
        return s * args.batch // (len(train_ids) - 1)

    def checkpoint(s):
        folder = os.path.join(checkpoint_dir, f"step-{s}")
        os.makedirs(folder, exist_ok=True)
        np.savez(os.path.join(folder, "model.npz"), vocab=vocab, **model.arrays())
        with open(os.path.join(folder, "state.json"), "w", encoding="utf-8") as f:
            json.dump({"step": s, "seed": args.seed, "dim": args.dim, "maxVocab": args.max_vocab}, f)
        protocol.emit(
            event="checkpoint",
            step=s,
            files=["model.npz", "state.json"],
            epoch=epoch_of(s),
            weightsSha256=model.weights_sha256(),
        )

    last_checkpoint = step
    while step < until and not terminated:
        step += 1
        started = time.perf_counter()
        rng = np.random.default_rng([args.seed, step])
        at = rng.integers(0, len(train_ids) - 1, size=args.batch)
        loss, grads = model.loss_and_grads(train_ids[at], train_ids[at + 1])
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / total))
        model.adam(grads, lr, step)
        elapsed = max(time.perf_counter() - started, 1e-9)
        protocol.emit(event="step", step=step, loss=loss, tokensPerSecond=args.batch / elapsed, epoch=epoch_of(step))
        if step == crash_at and crash_marker and not os.path.exists(crash_marker):
            open(crash_marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        if step % eval_every == 0 or step == until:
            protocol.emit(event="eval", step=step, valLoss=model.evaluate(val_ids, eval_tokens))
        if step % checkpoint_every == 0 or step == until:
            checkpoint(step)
            last_checkpoint = step
        if step_seconds > 0:
            time.sleep(step_seconds)
    if terminated:
        if last_checkpoint != step:
            checkpoint(step)
        sys.exit(128 + signal.SIGTERM)
    protocol.emit(event="done", step=step)


if __name__ == "__main__":
    main()
