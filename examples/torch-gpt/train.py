#!/usr/bin/env python3
"""PyTorch GPT trainer for Flywheel: a GPT-2-shaped model trained data-parallel (DDP, or FSDP2 with --fsdp).

Start it with `torchrun --standalone --nproc-per-node N train.py [args]`, or `python3 train.py [args]` for one
process. It keeps the contract an external trainer keeps with Flywheel (see reference_trainer.py):
  * each rank reads its part of FLYWHEEL_TRAIN_SHARDS with `webdataset` (data.py); evaluation reads
    FLYWHEEL_VALIDATION_SHARDS (the training split when that is empty);
  * rank 0 prints one JSON line per step, evaluation and checkpoint, then "done" (stdout, or FLYWHEEL_PROGRESS_FILE);
  * a checkpoint is FLYWHEEL_CHECKPOINT_DIR/step-<N>/: torch.distributed.checkpoint files of the model and optimizer
    (.metadata, __<rank>_0.distcp), trainer-state.json (step, configuration, schedule, every rank's data cursor),
    rng-rank<r>.pt, and the model files model.safetensors + model-config.json (Hugging Face GPT-2 names). It is
    written in the background while training goes on (Checkpointer) and announced only after every rank has
    finished writing it; the step and eval lines of later steps wait until then, so the checkpoint line still
    follows step N's lines;
  * resumes from --resume DIR (also FLYWHEEL_RESUME_DIR), reaching bitwise the same weights on CPU as a run that was
    never interrupted; starts from a registered model's files in FLYWHEEL_INIT_DIR (fine-tuning) when not resuming;
  * on SIGTERM, finishes the checkpoint being written, checkpoints where it stands and exits 128 + 15;
  * on bad configuration, any rank prints {"event":"fatal","message":...} (the protocol output: Flywheel fails the
    run without retrying, whatever the exit code torchrun reports) and the message on stderr, and exits 2.

Batch arithmetic follows DeepSpeed: global batch = --micro-batch x --grad-accum x world size, and
--deepspeed-config takes batch sizes, AdamW settings, the schedule, gradient clipping and bf16 from a DeepSpeed JSON.

Switches for tests (environment): TORCH_GPT_CRASH_AT_STEP=N with TORCH_GPT_CRASH_MARKER=PATH makes rank 0 kill
itself with SIGKILL right after step N once (the marker file remembers it happened); TORCH_GPT_STEP_SECONDS sleeps
after every step; TORCH_GPT_WRITE_SECONDS=S makes every rank's checkpoint writer sleep S seconds after the DCP files,
before the rest (a checkpoint still being written when the run is killed).
"""
import argparse
import contextlib
import json
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import Future

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from data import Cursor, DataError, Sequences, evaluate, rank_stream, read_stream, shard_list  # noqa: E402
from model import (  # noqa: E402
    GPT,
    MODEL_CONFIG,
    MODEL_FILES,
    GPTConfig,
    ModelFilesError,
    file_tensors,
    read_model_tensors,
    save_model_files,
    weights_sha256,
)

CONFIG_ERROR = 2
STATE_FILE = "trainer-state.json"
STATE_FORMAT = "torch-gpt/1"


def fail_config(message):
    """Bad configuration: a `fatal` event for Flywheel (any rank may print it), the message on stderr, exit 2.

    The event is what tells Flywheel not to retry: torchrun reports a worker's exit 2 as its own exit 1.
    """
    report_fatal(message)
    print(f"torch-gpt: {message}", file=sys.stderr, flush=True)
    sys.exit(CONFIG_ERROR)


def report_fatal(message):
    """{"event":"fatal","message":...} on the protocol output (FLYWHEEL_PROGRESS_FILE or stdout), flushed."""
    line = json.dumps({"event": "fatal", "message": message}) + "\n"
    path = os.environ.get("FLYWHEEL_PROGRESS_FILE")
    try:
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line)
        else:
            sys.stdout.write(line)
            sys.stdout.flush()
    except OSError:
        pass  # the message still goes to stderr


class ArgumentParser(argparse.ArgumentParser):
    """Invalid arguments are bad configuration too: they print the fatal event as well."""

    def error(self, message):
        self.print_usage(sys.stderr)
        fail_config(f"{self.prog}: {message}")


def warn(message):
    print(f"torch-gpt: warning: {message}", file=sys.stderr, flush=True)


def parse_args():
    parser = ArgumentParser(description=__doc__.split("\n", 1)[0])
    model = parser.add_argument_group("model (the vocabulary size comes from FLYWHEEL_VOCAB_SIZE)")
    model.add_argument("--n-layer", type=int, default=4, help="transformer blocks")
    model.add_argument("--n-head", type=int, default=4, help="attention heads (must divide --n-embd)")
    model.add_argument("--n-embd", type=int, default=128, help="model width")
    model.add_argument("--n-positions", type=int, default=128, help="context length (tokens per sequence)")
    model.add_argument("--untied-head", action="store_true", help="own lm_head.weight instead of the token embedding")
    train = parser.add_argument_group("training")
    train.add_argument("--seed", type=int, default=0, help="seeds initialization and the data order")
    train.add_argument("--micro-batch", type=int, default=8, help="sequences per rank per forward pass")
    train.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    train.add_argument("--lr", type=float, default=6e-4, help="peak AdamW learning rate")
    train.add_argument("--min-lr-ratio", type=float, default=0.1, help="cosine decay ends at lr x this")
    train.add_argument("--warmup-steps", type=int, default=10, help="linear warm-up steps")
    train.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay (matrices only)")
    train.add_argument("--beta1", type=float, default=0.9)
    train.add_argument("--beta2", type=float, default=0.95)
    train.add_argument("--eps", type=float, default=1e-8)
    train.add_argument("--grad-clip", type=float, default=1.0, help="gradient norm clip (0: none)")
    train.add_argument("--deepspeed-config", metavar="PATH", help="DeepSpeed JSON: batch, optimizer, scheduler, bf16")
    train.add_argument("--fsdp", action="store_true", help="shard parameters, gradients and optimizer state (FSDP2)")
    train.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast (default: on for CUDA, off on CPU)",
    )
    parser.add_argument("--resume", help="checkpoint folder to resume from (Flywheel passes it)")
    args = parser.parse_args()
    for name in ("n_layer", "n_head", "n_embd", "n_positions", "micro_batch", "grad_accum"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.n_embd % args.n_head:
        parser.error(f"--n-embd {args.n_embd} must be divisible by --n-head {args.n_head}")
    if not args.lr > 0:
        parser.error(f"--lr must be positive, got {args.lr}")
    if not 0 <= args.min_lr_ratio <= 1:
        parser.error(f"--min-lr-ratio must be in [0, 1], got {args.min_lr_ratio}")
    if args.warmup_steps < 0 or args.weight_decay < 0 or args.grad_clip < 0 or not args.eps > 0:
        parser.error("--warmup-steps, --weight-decay and --grad-clip must not be negative, --eps must be positive")
    if not (0 <= args.beta1 < 1 and 0 <= args.beta2 < 1):
        parser.error("--beta1 and --beta2 must be in [0, 1)")
    return args


def env_int(name, default=None, minimum=None):
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            fail_config(f"{name} is not set; start this trainer through a Flywheel training spec's `external`")
        return default
    try:
        number = int(value)
    except ValueError:
        fail_config(f"{name} must be an integer, got {value!r}")
    if minimum is not None and number < minimum:
        fail_config(f"{name} must be at least {minimum}, got {number}")
    return number


class Protocol:
    """Progress lines for Flywheel (rank 0 only): stdout, or FLYWHEEL_PROGRESS_FILE when the spec reports to a file."""

    def __init__(self, enabled):
        self.enabled = enabled
        path = os.environ.get("FLYWHEEL_PROGRESS_FILE")
        self.out = (open(path, "a", encoding="utf-8") if path else sys.stdout) if enabled else None

    def emit(self, **event):
        if self.enabled:
            self.out.write(json.dumps(event) + "\n")
            self.out.flush()


def exit_when_worker_is_gone():
    """Flywheel keeps our stdin open while its worker lives: EOF means it died, and nobody reads our progress."""

    def watch():
        # os.read, not sys.stdin: a thread blocked in Python's buffered reader would hang interpreter shutdown.
        while os.read(0, 1 << 16):
            pass
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


# ---------------------------------------------------------------------------------------------------------------------
# Learning-rate schedules


class Schedule:
    """The learning rate of optimizer step s (1-based) as a pure function, so resuming needs only its parameters.

    `warmup-cosine` (the arguments): linear warm-up to lr over warmupSteps, cosine decay to lr x minRatio at
    totalSteps. `WarmupCosineLR`, `WarmupLR`, `WarmupDecayLR`: DeepSpeed's formulas at iteration s - 1.
    """

    def __init__(self, state):
        self.state = dict(state)

    def lr(self, step):
        s = self.state
        kind = s["type"]
        if kind == "warmup-cosine":
            if step <= s["warmupSteps"]:
                return s["lr"] * step / s["warmupSteps"]
            progress = min(1.0, (step - s["warmupSteps"]) / max(1, s["totalSteps"] - s["warmupSteps"]))
            ratio = s["minRatio"] + (1 - s["minRatio"]) * 0.5 * (1 + math.cos(math.pi * progress))
            return s["lr"] * ratio
        it = step - 1
        if kind == "WarmupCosineLR":
            it = min(it, s["total_num_steps"])
            if it < s["warmup_num_steps"]:
                ratio = self._warmup(it) * (1 - s["warmup_min_ratio"]) + s["warmup_min_ratio"]
                return s["lr"] * ratio
            real_last = it - s["warmup_num_steps"] + 1
            real_total = max(1, s["total_num_steps"] - s["warmup_num_steps"])
            ratio = (1 + math.cos(math.pi * real_last / real_total)) / 2
            return s["lr"] * max(0.0, s["cos_min_ratio"] + (1 - s["cos_min_ratio"]) * ratio)
        if kind in ("WarmupLR", "WarmupDecayLR"):
            if it < s["warmup_num_steps"]:
                gamma = self._warmup(it)
            elif kind == "WarmupDecayLR":
                gamma = max(0.0, (s["total_num_steps"] - it) / max(1.0, s["total_num_steps"] - s["warmup_num_steps"]))
            else:
                gamma = 1.0
            return s["warmup_min_lr"] + (s["warmup_max_lr"] - s["warmup_min_lr"]) * gamma
        raise ValueError(f"unknown schedule {kind!r}")

    def _warmup(self, it):
        s = self.state
        if s["warmup_type"] == "linear":
            return it / s["warmup_num_steps"]
        return math.log(it + 1) / math.log(max(2, s["warmup_num_steps"]))


# ---------------------------------------------------------------------------------------------------------------------
# Training settings: the arguments, or a DeepSpeed config


def training_settings(args, world_size, total_steps):
    """Batch sizes, AdamW settings, schedule, clipping and bf16, from the arguments and --deepspeed-config."""
    settings = {
        "microBatch": args.micro_batch,
        "gradAccum": args.grad_accum,
        "lr": args.lr,
        "betas": [args.beta1, args.beta2],
        "eps": args.eps,
        "weightDecay": args.weight_decay,
        "gradClip": args.grad_clip,
        "bf16": args.bf16,
        "schedule": {
            "type": "warmup-cosine",
            "lr": args.lr,
            "warmupSteps": args.warmup_steps,
            "minRatio": args.min_lr_ratio,
            "totalSteps": total_steps,
        },
    }
    if args.deepspeed_config:
        apply_deepspeed_config(settings, args.deepspeed_config, world_size, total_steps)
    settings["globalBatch"] = settings["microBatch"] * settings["gradAccum"] * world_size
    return settings


def apply_deepspeed_config(settings, path, world_size, total_steps):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        fail_config(f"cannot read the DeepSpeed config {path}: {e}")
    if not isinstance(doc, dict):
        fail_config(f"the DeepSpeed config {path} is not a JSON object")

    def number(section, key, default, kind=float, where=""):
        value = section.get(key, "auto")
        if value == "auto" or value is None:
            return default
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int:
            ok = ok and float(value).is_integer()
        if not ok:
            fail_config(f"{path}: {where}{key} must be a number, got {value!r}")
        return kind(value)

    # Batch sizes as DeepSpeed derives them; "auto" micro batch / accumulation take the arguments (as HF does).
    train_batch = number(doc, "train_batch_size", None, int)
    micro = doc.get("train_micro_batch_size_per_gpu")
    micro = settings["microBatch"] if micro == "auto" else number(doc, "train_micro_batch_size_per_gpu", None, int)
    accum = doc.get("gradient_accumulation_steps")
    accum = settings["gradAccum"] if accum == "auto" else number(doc, "gradient_accumulation_steps", None, int)
    if train_batch is not None and micro is not None and accum is not None:
        pass
    elif train_batch is not None and micro is not None:
        accum = train_batch // micro // world_size
    elif train_batch is not None and accum is not None:
        micro = train_batch // world_size // accum
    elif micro is not None and accum is not None:
        train_batch = micro * accum * world_size
    elif train_batch is not None:
        accum, micro = 1, train_batch // world_size
    elif micro is not None:
        train_batch, accum = micro * world_size, 1
    else:
        fail_config(f"{path}: Either train_batch_size or train_micro_batch_size_per_gpu needs to be provided")
    if train_batch <= 0:
        fail_config(f"{path}: Train batch size: {train_batch} has to be greater than 0")
    if micro <= 0:
        fail_config(f"{path}: Micro batch size per gpu: {micro} has to be greater than 0")
    if accum <= 0:
        fail_config(f"{path}: Gradient accumulation steps: {accum} has to be greater than 0")
    if train_batch != micro * accum * world_size:
        fail_config(
            f"{path}: Check batch related parameters. train_batch_size is not equal to micro_batch_per_gpu * "
            f"gradient_acc_step * world_size {train_batch} != {micro} * {accum} * {world_size}"
        )
    settings["microBatch"], settings["gradAccum"] = micro, accum
    settings["gradClip"] = number(doc, "gradient_clipping", settings["gradClip"])

    optimizer = doc.get("optimizer")
    if optimizer is not None:
        kind = str(optimizer.get("type", "")).lower() if isinstance(optimizer, dict) else ""
        if kind not in ("adamw", "adam"):
            fail_config(f"{path}: optimizer type {optimizer.get('type') if isinstance(optimizer, dict) else optimizer!r} "
                        "is not supported; use AdamW (or Adam, which DeepSpeed runs as AdamW)")
        params = optimizer.get("params") or {}
        if params.get("adam_w_mode") is False:
            fail_config(f"{path}: adam_w_mode false (L2-coupled Adam) is not supported; this trainer runs AdamW")
        settings["lr"] = number(params, "lr", settings["lr"], where="optimizer.params.")
        settings["eps"] = number(params, "eps", settings["eps"], where="optimizer.params.")
        settings["weightDecay"] = number(params, "weight_decay", settings["weightDecay"], where="optimizer.params.")
        betas = params.get("betas", "auto")
        if betas != "auto":
            if not (isinstance(betas, list) and len(betas) == 2 and all(isinstance(b, (int, float)) for b in betas)):
                fail_config(f"{path}: optimizer.params.betas must be two numbers, got {betas!r}")
            settings["betas"] = [float(b) for b in betas]
    settings["schedule"]["lr"] = settings["lr"]

    scheduler = doc.get("scheduler")
    if scheduler is not None:
        kind = scheduler.get("type") if isinstance(scheduler, dict) else None
        params = (scheduler.get("params") or {}) if isinstance(scheduler, dict) else {}
        where = "scheduler.params."
        warmup_type = params.get("warmup_type", "log")
        if warmup_type not in ("log", "linear"):
            fail_config(f"{path}: scheduler.params.warmup_type must be 'log' or 'linear', got {warmup_type!r}")
        if kind == "WarmupCosineLR":
            schedule = {
                "type": kind,
                "lr": settings["lr"],
                "total_num_steps": number(params, "total_num_steps", total_steps, int, where),
                "warmup_min_ratio": number(params, "warmup_min_ratio", 0.0, float, where),
                "warmup_num_steps": number(params, "warmup_num_steps", 1000, int, where),
                "cos_min_ratio": number(params, "cos_min_ratio", 0.0001, float, where),
                "warmup_type": warmup_type,
            }
        elif kind in ("WarmupLR", "WarmupDecayLR"):
            schedule = {
                "type": kind,
                "warmup_min_lr": number(params, "warmup_min_lr", 0.0, float, where),
                "warmup_max_lr": number(params, "warmup_max_lr", settings["lr"], float, where),
                "warmup_num_steps": max(2, number(params, "warmup_num_steps", 1000, int, where)),
                "warmup_type": warmup_type,
            }
            if kind == "WarmupDecayLR":
                schedule["total_num_steps"] = number(params, "total_num_steps", total_steps, int, where)
        else:
            fail_config(f"{path}: scheduler type {kind!r} is not supported; use WarmupCosineLR, WarmupLR or WarmupDecayLR")
        if schedule["warmup_num_steps"] < 1:
            fail_config(f"{path}: scheduler.params.warmup_num_steps must be at least 1")
        settings["schedule"] = schedule

    if isinstance(doc.get("fp16"), dict) and doc["fp16"].get("enabled") is True:
        fail_config(f"{path}: fp16 is not supported; use bf16")
    if isinstance(doc.get("bf16"), dict) and doc["bf16"].get("enabled") in (True, False) and settings["bf16"] is None:
        settings["bf16"] = doc["bf16"]["enabled"]
    zero = doc.get("zero_optimization")
    if isinstance(zero, dict) and zero.get("stage", 0) not in (0, None):
        warn(f"{path}: zero_optimization is not read; --fsdp shards parameters, gradients and optimizer state")


# ---------------------------------------------------------------------------------------------------------------------
# Distributed setup


def init_distributed():
    """The process group: torchrun's (env://), or a single-process one for `python3 train.py`."""
    cuda = torch.cuda.is_available()
    backend = "nccl" if cuda else "gloo"
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend)
    else:
        local_rank = 0
        if cuda:
            torch.cuda.set_device(0)
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    return dist.get_rank(), dist.get_world_size(), device


def rng_state():
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def config_differences(a, b, first="the checkpoint", second="the arguments"):
    return [
        f"{k} is {a.get(k)!r} in {first}, {b.get(k)!r} in {second}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
    ]


def init_from_model_files(folder, model, config):
    """Fine-tuning: the registered model's weights in FLYWHEEL_INIT_DIR, checked against the spec'd model."""
    config_path = os.path.join(folder, MODEL_CONFIG)
    differences = []
    try:
        with open(config_path, encoding="utf-8") as f:
            differences = config_differences(json.load(f), config.to_json(), first=MODEL_CONFIG)
    except (OSError, ValueError) as e:
        fail_config(f"FLYWHEEL_INIT_DIR: cannot read {config_path}: {e}")
    try:
        tensors = read_model_tensors(folder, config)
    except ModelFilesError as e:
        extra = f"; {config_path}: {', '.join(differences)}" if differences else ""
        fail_config(f"FLYWHEEL_INIT_DIR: {e}{extra}")
    if differences:
        fail_config(f"FLYWHEEL_INIT_DIR: {config_path} describes another model: {', '.join(differences)}")
    with torch.no_grad():
        model.load_state_dict(tensors, strict=True)


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints, written while training goes on


def staged_copy(obj):
    """A copy of a state dict that training cannot change: tensors cloned (plain ones to CPU), containers rebuilt."""
    from torch.distributed.tensor import DTensor

    if isinstance(obj, DTensor):
        return obj.detach().clone()  # this rank's shard, where it lives
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: staged_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(staged_copy(v) for v in obj)
    return obj  # numbers, strings, None


def fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Checkpointer:
    """Checkpoints that training does not wait for.

    `start(N, stage)` at step N takes what checkpoint N holds (`stage()`: the state dicts of the model and optimizer,
    the RNG states, every rank's data cursor; under FSDP rank 0 also gathers the full weights) and hands it to a
    thread. The thread first copies the state dicts (plain tensors to CPU, FSDP shards where they are) while step
    N + 1 runs its forward and backward passes; that step's optimizer update waits for the copy (`before_update`),
    so the copy holds step N's weights exactly. Then it writes FLYWHEEL_CHECKPOINT_DIR/step-N/ while training goes
    on: the DCP files, over a process group of its own so that its collectives never interleave with training's;
    rng-rank<r>.pt; and on rank 0 model.safetensors, model-config.json, the weights' sha256 and trainer-state.json;
    every file fsynced.

    Each step's all_gather carries every rank's "my files are written" flag (`status`). At the first step where every
    rank reports it (`poll`; every rank sees the same rows, so every rank decides alike) rank 0 announces the
    checkpoint. Until then rank 0 holds back the step and eval events of the steps after N (`emit`), so that the
    checkpoint event still follows step N's events. A checkpoint still pending is waited for by every rank and agreed
    with an all_reduce (`finish`) before the next one starts, at the end of the segment and on SIGTERM; the last
    checkpoint of a segment (`final`) is written without a copy. The event's `seconds` is the time the training loop
    spent on the checkpoint (staging, waiting for the copy or the files), `writeSeconds` the slowest rank's time
    writing the files (from the moment every rank had its copy).
    """

    def __init__(self, rank, device, root, protocol, config, write_delay=0.0):
        self.rank, self.device, self.root, self.protocol, self.config = rank, device, root, protocol, config
        self.write_delay = write_delay
        self.group = dist.new_group(backend="gloo")
        self.pending = None
        self.held = []

    def emit(self, **event):
        """A step or eval event: printed now, or held back (in order) while a checkpoint is pending."""
        if self.pending is not None and self.protocol.enabled:
            self.held.append(event)
        else:
            self.protocol.emit(**event)

    def status(self):
        """(1 when this rank has written the pending checkpoint's files (or none is pending), else 0; its seconds)."""
        job = self.pending
        if job is None:
            return 1.0, 0.0
        if not job["future"].done():
            return 0.0, 0.0
        return 1.0, job["future"].result()[1]  # raises what the writer raised

    def poll(self, written, seconds):
        """After a step's all_gather: announces the pending checkpoint once every rank has written its files."""
        if self.pending is not None and bool(written.min() >= 1):
            self._announce(float(seconds.max()))

    def start(self, step, stage, final=False):
        """Checkpoint `step`: waits for the one pending, stages, and leaves the copying and writing to a thread.

        `final`: training is over, so the writer need not copy the state first.
        """
        self.finish()
        started = time.perf_counter()
        job = stage()
        job.update(
            step=step, folder=os.path.join(self.root, f"step-{step}"), copy=not final, copied=threading.Event(),
            future=Future(),
        )
        threading.Thread(target=self._write, args=(job,), name=f"checkpoint-{step}", daemon=True).start()
        job["stall"] = time.perf_counter() - started
        self.pending = job

    def before_update(self):
        """The optimizer is about to change the weights: the pending checkpoint's copy must be complete."""
        job = self.pending
        if job is not None and not job["copied"].is_set():
            started = time.perf_counter()
            job["copied"].wait()
            job["stall"] += time.perf_counter() - started

    def finish(self):
        """Waits until the pending checkpoint's files are written on every rank, and announces it."""
        job = self.pending
        if job is None:
            return
        started = time.perf_counter()
        seconds = torch.tensor([job["future"].result()[1]], dtype=torch.float64, device=self.device)
        dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
        job["stall"] += time.perf_counter() - started
        self._announce(float(seconds.item()))

    def _announce(self, write_seconds):
        job, self.pending = self.pending, None
        if self.rank != 0:
            return
        started = time.perf_counter()
        folder = job["folder"]
        files = sorted(
            os.path.relpath(os.path.join(root, name), folder) for root, _, names in os.walk(folder) for name in names
        )
        self.protocol.emit(
            event="checkpoint",
            step=job["step"],
            files=files,
            modelFiles=list(MODEL_FILES),
            epoch=job["epoch"],
            weightsSha256=job["future"].result()[0],
            seconds=round(job["stall"] + time.perf_counter() - started, 6),
            writeSeconds=round(write_seconds, 6),
        )
        held, self.held = self.held, []
        for event in held:
            self.protocol.emit(**event)

    def _write(self, job):
        import torch.distributed.checkpoint as dcp

        try:
            try:
                if job["copy"]:  # the step's forward and backward run meanwhile; its update waits for this
                    job["state"], job["full"] = staged_copy(job["state"]), staged_copy(job["full"])
            finally:
                job["copied"].set()
            folder = job["folder"]
            if self.rank == 0:
                if os.path.exists(folder):
                    shutil.rmtree(folder)  # what an earlier, interrupted attempt left
                os.makedirs(folder)
            dist.barrier(group=self.group)  # the folder exists before any rank writes into it
            started = time.perf_counter()  # every rank has staged: the writing's own time from here
            state = job.pop("state")
            dcp.save(state, checkpoint_id=folder, process_group=self.group)
            if self.write_delay > 0:
                time.sleep(self.write_delay)
            written = [os.path.join(folder, f"rng-rank{self.rank}.pt")]
            torch.save(job.pop("rng"), written[0])
            digest = None
            if self.rank == 0:  # the full weights: FSDP's gathered ones, or DDP's replica
                full = job.pop("full")
                tensors = file_tensors(full if full is not None else state["model"], self.config)
                del full
                written += [os.path.join(folder, name) for name in save_model_files(tensors, self.config, folder)]
                digest = weights_sha256(tensors)
                del tensors
                written.append(os.path.join(folder, STATE_FILE))
                with open(written[-1], "w", encoding="utf-8") as f:
                    json.dump(job["doc"], f, indent=2)
                    f.write("\n")
            del state
            for path in written:
                fsync(path)
            if self.rank == 0:
                fsync(folder)
            job["future"].set_result((digest, time.perf_counter() - started))
        except BaseException as e:  # noqa: BLE001 - handed to the training loop, which raises it
            job["future"].set_exception(e)


def optimizer_groups(model):
    decay, no_decay = [], []
    for _, param in model.named_parameters():
        (decay if param.dim() >= 2 else no_decay).append(param)
    return decay, no_decay


def main():
    args = parse_args()
    if os.environ.get("FLYWHEEL_TRAINER_ID"):
        exit_when_worker_is_gone()
    checkpoint_dir = os.environ.get("FLYWHEEL_CHECKPOINT_DIR") or fail_config("FLYWHEEL_CHECKPOINT_DIR is not set")
    until = env_int("FLYWHEEL_UNTIL_STEP", minimum=1)
    total = env_int("FLYWHEEL_TOTAL_STEPS", until, minimum=1)
    start_step = env_int("FLYWHEEL_START_STEP", 0, minimum=0)
    checkpoint_every = env_int("FLYWHEEL_CHECKPOINT_EVERY", until, minimum=1)
    eval_every = env_int("FLYWHEEL_EVAL_EVERY", until, minimum=1)
    eval_tokens = env_int("FLYWHEEL_EVAL_TOKENS", 20_000, minimum=1)
    vocab_size = env_int("FLYWHEEL_VOCAB_SIZE", minimum=2)
    crash_at = env_int("TORCH_GPT_CRASH_AT_STEP", 0)
    crash_marker = os.environ.get("TORCH_GPT_CRASH_MARKER")
    step_seconds = float(os.environ.get("TORCH_GPT_STEP_SECONDS", "0") or 0)
    write_delay = float(os.environ.get("TORCH_GPT_WRITE_SECONDS", "0") or 0)
    resume = args.resume or os.environ.get("FLYWHEEL_RESUME_DIR") or None
    init_dir = os.environ.get("FLYWHEEL_INIT_DIR") or None
    train_urls = shard_list(os.environ.get("FLYWHEEL_TRAIN_SHARDS"))
    val_urls = shard_list(os.environ.get("FLYWHEEL_VALIDATION_SHARDS"))
    if not train_urls:
        fail_config("FLYWHEEL_TRAIN_SHARDS names no shard")
    if start_step > 0 and not resume:
        fail_config(f"FLYWHEEL_START_STEP is {start_step} but no checkpoint was given to resume from (--resume)")

    terminated = []
    signal.signal(signal.SIGTERM, lambda *_: terminated.append(True))

    if os.environ.get("OMP_NUM_THREADS"):
        try:
            torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))
        except ValueError:
            pass
    rank, world_size, device = init_distributed()
    cuda = device.type == "cuda"
    if not cuda:
        torch.use_deterministic_algorithms(True)
    if args.fsdp and not cuda and world_size > 1 and not gloo_reduce_scatter_works(device):
        fail_config("--fsdp needs a backend with reduce-scatter (nccl); gloo in this PyTorch cannot run FSDP2")
    settings = training_settings(args, world_size, total)
    bf16 = settings["bf16"] if settings["bf16"] is not None else cuda
    protocol = Protocol(rank == 0)

    config = GPTConfig(args.n_layer, args.n_head, args.n_embd, args.n_positions, vocab_size, not args.untied_head)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    model = GPT(config)
    if init_dir and not resume:
        init_from_model_files(init_dir, model, config)
    model.to(device)

    try:
        stream = rank_stream(train_urls, rank, world_size, vocab_size)
    except DataError as e:
        fail_config(str(e))
    sequences = Sequences(stream, config.n_positions)
    if sequences.count < 1:
        fail_config(
            f"rank {rank} of {world_size} got {len(stream)} training tokens; a sequence needs "
            f"--n-positions + 1 = {config.n_positions + 1}"
        )
    cursor = Cursor(sequences.count, args.seed, rank)
    if rank == 0:
        params = sum(p.numel() for p in model.parameters())
        print(
            f"torch-gpt: {world_size} rank(s) on {device.type} ({dist.get_backend()}"
            f"{', FSDP2' if args.fsdp else ', DDP'}{', bf16 autocast' if bf16 else ''}); {params:,} parameters; "
            f"global batch {settings['globalBatch']} = micro {settings['microBatch']} x accumulation "
            f"{settings['gradAccum']} x {world_size} rank(s), {config.n_positions} tokens each; AdamW lr {settings['lr']}, "
            f"weight decay {settings['weightDecay']}, clipping {settings['gradClip']}",
            file=sys.stderr,
            flush=True,
        )

    if args.fsdp:
        from torch.distributed.fsdp import fully_shard

        for block in model.transformer["h"]:
            fully_shard(block)
        fully_shard(model)
        wrapped, plain = model, None
    else:
        from torch.nn.parallel import DistributedDataParallel as DDP

        wrapped = DDP(model, device_ids=[device.index] if cuda else None)
        plain = model
    evaluates = args.fsdp or rank == 0
    eval_stream = None
    if evaluates:
        try:
            eval_stream = read_stream(val_urls, limit=eval_tokens + 1, vocab_size=vocab_size)
            if len(eval_stream) < 2:
                eval_stream = read_stream(train_urls, limit=eval_tokens + 1, vocab_size=vocab_size)
        except DataError as e:
            fail_config(str(e))

    decay, no_decay = optimizer_groups(model)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings["lr"],
        betas=tuple(settings["betas"]),
        eps=settings["eps"],
        fused=True,  # one kernel per tensor: on CPU several times faster than the per-tensor op loop
    )
    schedule = Schedule(settings["schedule"])

    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_state_dict,
        set_state_dict,
    )
    import torch.distributed.checkpoint as dcp

    trainer_config = {
        "model": config.to_json(),
        "seed": args.seed,
        "worldSize": world_size,
        "fsdp": args.fsdp,
        "batch": {"microBatch": settings["microBatch"], "gradAccum": settings["gradAccum"], "globalBatch": settings["globalBatch"]},
        "optimizer": {k: settings[k] for k in ("lr", "betas", "eps", "weightDecay", "gradClip")},
        "bf16": bool(bf16),
    }

    step = 0
    if resume:
        state_path = os.path.join(resume, STATE_FILE)
        try:
            with open(state_path, encoding="utf-8") as f:
                saved = json.load(f)
        except (OSError, ValueError) as e:
            fail_config(f"cannot read {state_path}: {e}")
        if saved.get("format") != STATE_FORMAT:
            fail_config(f"{state_path} is not a torch-gpt checkpoint (format {saved.get('format')!r})")
        if saved["model"] != config.to_json():
            fail_config(
                f"the checkpoint in {resume} holds another model: "
                + ", ".join(config_differences(saved["model"], config.to_json()))
            )
        if saved["seed"] != args.seed:
            fail_config(f"the checkpoint in {resume} was trained with --seed {saved['seed']}, the arguments give {args.seed}")
        if saved["worldSize"] != world_size:
            fail_config(
                f"the checkpoint in {resume} was written by {saved['worldSize']} ranks, this run has {world_size}: "
                "every rank's data cursor is part of the checkpoint, start as many ranks"
            )
        if start_step and saved["step"] != start_step:
            fail_config(f"FLYWHEEL_START_STEP is {start_step} but the checkpoint in {resume} is at step {saved['step']}")
        changed = config_differences(
            {k: saved.get(k) for k in ("batch", "optimizer", "fsdp")}, {k: trainer_config[k] for k in ("batch", "optimizer", "fsdp")}
        )
        if changed:
            warn(f"resuming with other settings than the checkpoint's: {', '.join(changed)}")
        if saved["scheduler"] != settings["schedule"]:
            warn(f"the checkpoint's learning-rate schedule {saved['scheduler']} continues (the arguments give {settings['schedule']})")
        schedule = Schedule(saved["scheduler"])
        model_state, optim_state = get_state_dict(wrapped, optimizer)
        state = {"model": model_state, "optim": optim_state}
        try:
            dcp.load(state, checkpoint_id=resume)
        except Exception as e:  # DCP wraps every rank's failure in its own exception types
            fail_config(f"cannot load the checkpoint in {resume}: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}")
        set_state_dict(wrapped, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
        try:
            cursor.restore(saved["cursors"][rank])
        except DataError as e:
            fail_config(str(e))
        rng_path = os.path.join(resume, f"rng-rank{rank}.pt")
        try:
            set_rng_state(torch.load(rng_path, weights_only=False))
        except (OSError, RuntimeError, KeyError) as e:
            fail_config(f"cannot read {rng_path}: {e}")
        step = int(saved["step"])
    if until < step:
        fail_config(f"FLYWHEEL_UNTIL_STEP {until} is before the checkpoint's step {step}")

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 and cuda else (
        torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    )
    tokens_per_step = settings["globalBatch"] * config.n_positions

    def stage(s, rows):
        """What checkpoint s holds, at step s: the state dicts (the live tensors: the writer copies them), RNG
        states, every rank's data cursor, and on rank 0 under FSDP the full weights for the model files."""
        model_state, optim_state = get_state_dict(wrapped, optimizer)
        full = None
        if args.fsdp:  # an all-gather (every rank), kept on rank 0 only (cpu_offload)
            full = get_model_state_dict(wrapped, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        cursors = [{"epoch": int(r[2]), "position": int(r[3]), "sequences": int(r[4])} for r in rows.tolist()]
        return {
            "state": {"model": model_state, "optim": optim_state},
            "full": full,
            "rng": rng_state(),
            "doc": {"format": STATE_FORMAT, "step": s, **trainer_config, "scheduler": schedule.state, "cursors": cursors},
            "epoch": min(c["epoch"] for c in cursors),
        }

    checkpoints = Checkpointer(rank, device, checkpoint_dir, protocol, config, write_delay)
    loop_started = time.perf_counter()
    last_checkpoint = step
    stop = False
    wrapped.train()
    while step < until and not stop:
        step += 1
        started = time.perf_counter()
        lr = schedule.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = 0.0
        for micro in range(settings["gradAccum"]):
            batch = sequences.get(cursor.take(settings["microBatch"])).to(device)
            sync = micro == settings["gradAccum"] - 1
            if args.fsdp:
                wrapped.set_requires_gradient_sync(sync)
                no_sync = contextlib.nullcontext()
            else:
                no_sync = contextlib.nullcontext() if sync else wrapped.no_sync()
            with no_sync:
                with autocast:
                    logits = wrapped(batch[:, :-1])
                loss = F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten())
                (loss / settings["gradAccum"]).backward()
            loss_sum += loss.item()
        if settings["gradClip"] > 0:
            torch.nn.utils.clip_grad_norm_(wrapped.parameters(), settings["gradClip"])
        checkpoints.before_update()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        # One all_gather a step: loss, SIGTERM, data cursor, and whether the pending checkpoint is written here.
        mine = torch.tensor(
            [loss_sum / settings["gradAccum"], float(bool(terminated)), cursor.epoch, cursor.position, cursor.count,
             *checkpoints.status()],
            dtype=torch.float64,
            device=device,
        )
        rows = [torch.zeros_like(mine) for _ in range(world_size)]
        dist.all_gather(rows, mine)
        rows = torch.stack(rows).cpu()
        stop = bool(rows[:, 1].max() > 0)
        elapsed = max(time.perf_counter() - started, 1e-9)
        checkpoints.poll(rows[:, 5], rows[:, 6])
        checkpoints.emit(
            event="step",
            step=step,
            loss=float(rows[:, 0].mean()),
            tokensPerSecond=tokens_per_step / elapsed,
            epoch=int(rows[:, 2].min()),
        )
        if rank == 0 and step == crash_at and crash_marker and not os.path.exists(crash_marker):
            open(crash_marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        if step % eval_every == 0 or step == until:
            if evaluates:
                val_loss, _ = evaluate(wrapped if args.fsdp else plain, eval_stream, eval_tokens, config.n_positions, device)
                checkpoints.emit(event="eval", step=step, valLoss=val_loss)
        if step % checkpoint_every == 0 or step == until:
            checkpoints.start(step, lambda: stage(step, rows), final=step == until)
            last_checkpoint = step
        if step_seconds > 0:
            time.sleep(step_seconds)
    if stop and last_checkpoint != step:
        checkpoints.start(step, lambda: stage(step, rows), final=True)
    checkpoints.finish()
    if stop:
        dist.barrier()
        dist.destroy_process_group()
        sys.exit(128 + signal.SIGTERM)
    protocol.emit(event="done", step=step, seconds=round(time.perf_counter() - loop_started, 6))
    dist.barrier()
    dist.destroy_process_group()


def gloo_reduce_scatter_works(device):
    """FSDP2 reduce-scatters gradients; older gloo builds lack reduce_scatter_tensor."""
    out = torch.zeros(1, device=device)
    try:
        dist.reduce_scatter_tensor(out, torch.ones(dist.get_world_size(), device=device))
        return True
    except (RuntimeError, NotImplementedError):
        return False


if __name__ == "__main__":
    main()
