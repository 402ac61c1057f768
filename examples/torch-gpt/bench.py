#!/usr/bin/env python3
"""Measures the torch-gpt trainer on this machine; the last line it prints is one JSON object (also --out FILE).

  * matmulPeakGflops: the best fp32 torch.matmul rate with all threads (square 1024 to 3072, best of several, taken
    before and after the training runs: other load on the machine only lowers it);
  * oneRank, twoRanks: the trainer's training tokens/s (the median over the steps after the first --warmup) with
    1 rank and OMP_NUM_THREADS=1, and with 2 ranks (torchrun, gloo) of 1 thread each; modelGflops = tokens/s x
    FLOPs per token (model.flops_per_token: 6 N + 12 L T d, N = the parameters outside the embeddings plus the head
    matmul, vocab x d); mfu = modelGflops / matmulPeakGflops. Both are against the all-thread peak, so on 2 cores one
    rank on one thread is at most about 0.5;
  * scaling: twoRanks / oneRank tokens/s;
  * checkpointStall: the sum of the checkpoint events' `seconds` (the time the training loop spent on each
    checkpoint: staging, waiting for the copy or for the files) over the segment's wall time (the done event's
    `seconds`), 2 ranks, --stall-steps steps with a checkpoint every --checkpoint-every steps (the last one included:
    the segment ends only once it is written).
Progress and the per-run details go to stderr. Takes about 2 to 3 minutes on 2 cores.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from model import GPT, GPTConfig  # noqa: E402
from synthetic import make_shards  # noqa: E402

VOCAB = 50257


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def matmul_peak(sizes=(1024, 2048, 3072), repeats=4):
    """The best fp32 matmul GFLOP/s over `sizes`, all threads."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.matmul(a, b)
        for _ in range(repeats):
            started = time.perf_counter()
            torch.matmul(a, b)
            best = max(best, 2 * n**3 / (time.perf_counter() - started) / 1e9)
    return best


def train(data, folder, nproc, steps, every, model_args):
    """Runs train.py (1 thread per rank) for `steps` steps; returns its protocol events."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "TORCH_GPT_"))}
    env.update(
        {
            "FLYWHEEL_TRAIN_SHARDS": data,
            "FLYWHEEL_VALIDATION_SHARDS": "",
            "FLYWHEEL_VOCAB_SIZE": str(VOCAB),
            "FLYWHEEL_CHECKPOINT_DIR": folder,
            "FLYWHEEL_UNTIL_STEP": str(steps),
            "FLYWHEEL_TOTAL_STEPS": str(steps),
            "FLYWHEEL_CHECKPOINT_EVERY": str(every),
            "FLYWHEEL_EVAL_EVERY": str(10**6),
            "FLYWHEEL_EVAL_TOKENS": "128",
            "OMP_NUM_THREADS": "1",
        }
    )
    launcher = [sys.executable]
    if nproc > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    started = time.perf_counter()
    proc = subprocess.run(
        launcher + [os.path.join(HERE, "train.py"), *model_args],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        sys.exit(f"bench: the trainer failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    log(f"{nproc} rank(s), {steps} steps, checkpoint every {every}: {time.perf_counter() - started:.1f} s")
    return events


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--steps", type=int, default=8, help="steps of each throughput run")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the tokens/s median")
    parser.add_argument("--stall-steps", type=int, default=40, help="steps of the checkpoint-stall run (2 ranks)")
    parser.add_argument("--checkpoint-every", type=int, default=10, help="its checkpoint interval")
    defaults = (("--n-layer", 4), ("--n-head", 4), ("--n-embd", 256), ("--n-positions", 128), ("--micro-batch", 4),
                ("--grad-accum", 2))
    for name, default in defaults:
        parser.add_argument(name, type=int, default=default, help="passed to train.py")
    args = parser.parse_args()
    model_args = [
        "--n-layer", str(args.n_layer), "--n-head", str(args.n_head), "--n-embd", str(args.n_embd),
        "--n-positions", str(args.n_positions), "--micro-batch", str(args.micro_batch),
        "--grad-accum", str(args.grad_accum),
    ]  # fmt: skip
    config = GPTConfig(args.n_layer, args.n_head, args.n_embd, args.n_positions, VOCAB, True)
    model = GPT(config)
    flops_per_token = model.flops_per_token()
    parameters = sum(p.numel() for p in model.parameters())
    del model

    log(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    peaks = [matmul_peak()]
    log(f"fp32 matmul peak {peaks[0]:.1f} GFLOP/s ({torch.get_num_threads()} threads)")

    def figures(events):
        rates = [e["tokensPerSecond"] for e in events if e["event"] == "step"][args.warmup :]
        tokens = statistics.median(rates)
        gflops = tokens * flops_per_token / 1e9
        return {"tokensPerSecond": round(tokens, 1), "modelGflops": round(gflops, 2)}

    with tempfile.TemporaryDirectory() as tmp:
        data = "::".join(make_shards(os.path.join(tmp, "data"), shards=4, documents_per_shard=40))
        one = figures(train(data, os.path.join(tmp, "one"), 1, args.steps, args.steps, model_args))
        two = figures(train(data, os.path.join(tmp, "two"), 2, args.steps, args.steps, model_args))
        events = train(data, os.path.join(tmp, "stall"), 2, args.stall_steps, args.checkpoint_every, model_args)
    peaks.append(matmul_peak())
    peak = max(peaks)
    log(f"fp32 matmul peak {peaks[1]:.1f} GFLOP/s after the runs; best {peak:.1f}")
    for figure in (one, two):
        figure["mfu"] = round(figure["modelGflops"] / peak, 4)
    checkpoints = [e for e in events if e["event"] == "checkpoint"]
    segment = [e for e in events if e["event"] == "done"][0]["seconds"]
    stall = sum(e["seconds"] for e in checkpoints)
    for e in checkpoints:
        log(f"checkpoint {e['step']}: the loop waited {e['seconds']:.3f} s, writing took {e['writeSeconds']:.3f} s")
    log(f"checkpoint stall {stall:.3f} s of a {segment:.1f} s segment ({len(checkpoints)} checkpoints)")
    log(f"load average {os.getloadavg()[0]:.2f} (other processes on the machine lower these figures)")

    result = {
        "device": f"cpu ({os.cpu_count()} cores)",
        "matmulPeakGflops": round(peak, 1),
        "oneRank": one,
        "twoRanks": two,
        "scaling": round(two["tokensPerSecond"] / one["tokensPerSecond"], 3),
        "checkpointStall": round(stall / segment, 4),
        "model": {
            **{k: v for k, v in config.to_json().items() if k in ("nLayer", "nHead", "nEmbd", "nPositions", "vocabSize")},
            "parameters": parameters,
            "microBatch": args.micro_batch,
            "gradAccum": args.grad_accum,
            "threadsPerRank": 1,
            "flopsPerToken": flops_per_token,
        },
    }
    text = json.dumps(result)
    print(text, flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
