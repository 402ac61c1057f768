"""Tests of the torch-gpt trainer on CPU: `python3 -m pytest examples/torch-gpt -q` (2 gloo ranks, tiny models)."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from synthetic import make_shards  # noqa: E402

TINY = ["--n-layer", "2", "--n-head", "2", "--n-embd", "64", "--n-positions", "64", "--micro-batch", "4"]
TRAIN_ARGS = TINY + ["--lr", "1e-2", "--warmup-steps", "2"]
EVAL_TOKENS = 1000
CONFIG_ERROR = 2


def torchrun(nproc=2):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]


def run_trainer(data, checkpoint_dir, until, args=(), nproc=2, extra_env=None, every=4, timeout=240):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "TORCH_GPT_"))}
    env.update(
        {
            "FLYWHEEL_TRAIN_SHARDS": data["train"],
            "FLYWHEEL_VALIDATION_SHARDS": data["validation"],
            "FLYWHEEL_VOCAB_SIZE": "50257",
            "FLYWHEEL_CHECKPOINT_DIR": str(checkpoint_dir),
            "FLYWHEEL_UNTIL_STEP": str(until),
            "FLYWHEEL_TOTAL_STEPS": str(until),
            "FLYWHEEL_CHECKPOINT_EVERY": str(every),
            "FLYWHEEL_EVAL_EVERY": str(every),
            "FLYWHEEL_EVAL_TOKENS": str(EVAL_TOKENS),
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra_env or {})
    launcher = torchrun(nproc) if nproc > 1 else [sys.executable]
    proc = subprocess.run(
        launcher + [os.path.join(HERE, "train.py"), *TRAIN_ARGS, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, events


def of(events, kind):
    return [e for e in events if e["event"] == kind]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    train = make_shards(str(folder), shards=3, documents_per_shard=30, seed=0, prefix="train")
    validation = make_shards(str(folder), shards=1, documents_per_shard=10, seed=1, prefix="val")
    return {"train": "::".join(train), "validation": "::".join(validation)}


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    proc, events = run_trainer(data, folder, 12)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"folder": folder, "events": events}


def test_protocol_of_an_uninterrupted_run(uninterrupted):
    events = uninterrupted["events"]
    assert [e["step"] for e in of(events, "step")] == list(range(1, 13))
    assert [e["step"] for e in of(events, "eval")] == [4, 8, 12]
    checkpoints = of(events, "checkpoint")
    assert [e["step"] for e in checkpoints] == [4, 8, 12]
    assert events[-1] == {**events[-1], "event": "done", "step": 12}
    for c in checkpoints:
        folder = uninterrupted["folder"] / f"step-{c['step']}"
        assert sorted(c["files"]) == sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        assert c["modelFiles"] == ["model.safetensors", "model-config.json"]
        assert {".metadata", "__0_0.distcp", "__1_0.distcp", "trainer-state.json", "rng-rank0.pt", "rng-rank1.pt"} <= set(c["files"])
        assert len(c["weightsSha256"]) == 64
    # a checkpoint's event directly follows its step's events (step, then eval), whenever its files were finished
    order = [(e["event"], e.get("step")) for e in events]
    for c in checkpoints:
        at = order.index(("checkpoint", c["step"]))
        assert order[at - 2 : at] == [("step", c["step"]), ("eval", c["step"])]
        assert c["seconds"] >= 0 and c["writeSeconds"] > 0
    assert order == sorted(order, key=lambda o: o[1]), "events in step order"


def test_loss_falls_on_synthetic_data(uninterrupted):
    steps = of(uninterrupted["events"], "step")
    evals = of(uninterrupted["events"], "eval")
    assert steps[-1]["loss"] < steps[0]["loss"] - 2.0
    assert evals[-1]["valLoss"] < evals[0]["valLoss"] - 1.0


def test_sigkilled_and_resumed_run_ends_with_identical_weights(data, uninterrupted, tmp_path):
    marker = tmp_path / "crashed"
    crash_env = {"TORCH_GPT_CRASH_AT_STEP": "9", "TORCH_GPT_CRASH_MARKER": str(marker)}
    # Slow writers: checkpoint 4 is waited for when checkpoint 8 starts, checkpoint 8 is still being written at step 9.
    proc, events = run_trainer(data, tmp_path / "ck", 12, extra_env={**crash_env, "TORCH_GPT_WRITE_SECONDS": "3"})
    assert proc.returncode != 0 and marker.exists()
    announced = of(events, "checkpoint")
    assert [e["step"] for e in announced] == [4]
    assert [e["step"] for e in of(events, "step")] == list(range(1, 9)), "step 9's event waits for checkpoint 8"
    assert announced[0]["writeSeconds"] >= 3 and of(events, "eval")[-1]["step"] == 8
    assert (tmp_path / "ck" / "step-8").is_dir() and not (tmp_path / "ck" / "step-8" / "trainer-state.json").exists()
    resume_dir = tmp_path / "ck" / "step-4"
    assert sorted(announced[0]["files"]) == sorted(str(p.relative_to(resume_dir)) for p in resume_dir.rglob("*") if p.is_file())
    proc, events = run_trainer(
        data,
        tmp_path / "ck",
        12,
        args=["--resume", str(resume_dir)],
        extra_env={**crash_env, "FLYWHEEL_RESUME_DIR": str(resume_dir), "FLYWHEEL_START_STEP": "4"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert of(events, "step")[0]["step"] == 5
    expected = {e["step"]: e for e in of(uninterrupted["events"], "step")}
    for e in of(events, "step"):
        assert e["loss"] == expected[e["step"]]["loss"]
    final = of(events, "checkpoint")[-1]
    reference = of(uninterrupted["events"], "checkpoint")[-1]
    assert final["step"] == reference["step"] == 12
    assert final["weightsSha256"] == reference["weightsSha256"]
    resumed_bytes = (tmp_path / "ck" / "step-12" / "model.safetensors").read_bytes()
    assert resumed_bytes == (uninterrupted["folder"] / "step-12" / "model.safetensors").read_bytes()


def test_fsdp_run_resumes_to_identical_weights(data, tmp_path):
    proc, events = run_trainer(data, tmp_path / "base", 4, args=["--fsdp"], every=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference = of(events, "checkpoint")[-1]
    marker = tmp_path / "crashed"
    crash_env = {"TORCH_GPT_CRASH_AT_STEP": "3", "TORCH_GPT_CRASH_MARKER": str(marker)}
    proc, events = run_trainer(data, tmp_path / "ck", 4, args=["--fsdp"], extra_env=crash_env, every=1)
    announced = [e["step"] for e in of(events, "checkpoint")]
    # checkpoint 1 is waited for when checkpoint 2 starts; checkpoint 2 may or may not be written before the kill
    assert proc.returncode != 0 and announced in ([1], [1, 2])
    resume_dir = tmp_path / "ck" / f"step-{announced[-1]}"
    proc, events = run_trainer(
        data,
        tmp_path / "ck",
        4,
        args=["--fsdp", "--resume", str(resume_dir)],
        extra_env={**crash_env, "FLYWHEEL_START_STEP": str(announced[-1])},
        every=2,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = of(events, "checkpoint")[-1]
    assert final["step"] == reference["step"] == 4
    assert final["weightsSha256"] == reference["weightsSha256"]
    assert (tmp_path / "ck" / "step-4" / "model.safetensors").read_bytes() == (
        tmp_path / "base" / "step-4" / "model.safetensors"
    ).read_bytes()


def evaluate_command(weights_dir, shards, tokens=EVAL_TOKENS, vocab="50257"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    env.update(
        {
            "FLYWHEEL_EVAL_WEIGHTS_DIR": str(weights_dir),
            "FLYWHEEL_EVAL_SHARDS": shards,
            "FLYWHEEL_EVAL_TOKENS": str(tokens),
            "FLYWHEEL_VOCAB_SIZE": vocab,
        }
    )
    return subprocess.run(
        [sys.executable, os.path.join(HERE, "evaluate.py")], env=env, capture_output=True, text=True, timeout=120
    )


def test_evaluate_command_matches_the_trainers_eval(data, uninterrupted):
    proc = evaluate_command(uninterrupted["folder"] / "step-12", data["validation"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    score = json.loads(lines[0])
    assert score["event"] == "eval" and score["tokens"] == EVAL_TOKENS
    trainer = of(uninterrupted["events"], "eval")[-1]["valLoss"]
    assert score["valLoss"] == pytest.approx(trainer, rel=1e-6, abs=1e-6)


def test_evaluate_command_refuses_bad_model_files(data, uninterrupted, tmp_path):
    proc = evaluate_command(tmp_path, data["validation"])
    assert proc.returncode == CONFIG_ERROR and "model-config.json" in proc.stderr
    fatal = json.loads(proc.stdout.strip().splitlines()[-1])
    assert fatal["event"] == "fatal" and "model-config.json" in fatal["message"]
    (tmp_path / "model-config.json").write_text(json.dumps({"architecture": "llama"}))
    proc = evaluate_command(tmp_path, data["validation"])
    assert proc.returncode == CONFIG_ERROR and "llama" in proc.stderr
    proc = evaluate_command(uninterrupted["folder"] / "step-12", data["validation"], vocab="1000")
    assert proc.returncode == CONFIG_ERROR and "FLYWHEEL_VOCAB_SIZE" in proc.stderr


def test_hugging_face_directory_loads_and_matches(data, uninterrupted, tmp_path):
    from model import write_hf_directory

    hf_dir = write_hf_directory(str(uninterrupted["folder"] / "step-12"), str(tmp_path / "hf"))
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "hf_check.py"), "--model-dir", hf_dir, "--shards", data["validation"],
         "--tokens", str(EVAL_TOKENS)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["class"] == "GPT2LMHeadModel" and result["tokens"] == EVAL_TOKENS
    # the trainer's last eval scored the same weights and tokens (and equals evaluate.py's, tested above)
    assert result["valLoss"] == pytest.approx(of(uninterrupted["events"], "eval")[-1]["valLoss"], rel=1e-3)


def test_init_from_model_files_with_wrong_shapes_is_fatal_under_torchrun(data, uninterrupted, tmp_path):
    proc, events = run_trainer(
        data,
        tmp_path,
        2,
        args=["--n-embd", "32"],
        extra_env={"FLYWHEEL_INIT_DIR": str(uninterrupted["folder"] / "step-12")},
    )
    # torchrun turns the workers' exit 2 into its own exit 1: the fatal event is what says "configuration"
    assert proc.returncode != 0
    assert "model.safetensors" in proc.stderr and "transformer.wte.weight" in proc.stderr
    fatal = of(events, "fatal")
    assert fatal and all(e.keys() == {"event", "message"} for e in fatal)
    message = fatal[0]["message"]
    assert "model.safetensors" in message and "transformer.wte.weight" in message
    assert "[50257, 64]" in message and "[50257, 32]" in message
    assert of(events, "step") == []


def test_deepspeed_config_with_inconsistent_batch_exits_2(data, tmp_path):
    config = tmp_path / "ds.json"
    config.write_text(json.dumps({"train_batch_size": 10, "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 1}))
    progress = tmp_path / "progress.jsonl"
    proc, events = run_trainer(
        data, tmp_path, 2, args=["--deepspeed-config", str(config)], nproc=1, extra_env={"FLYWHEEL_PROGRESS_FILE": str(progress)}
    )
    assert proc.returncode == CONFIG_ERROR
    message = "train_batch_size is not equal to micro_batch_per_gpu * gradient_acc_step * world_size 10 != 4 * 1 * 1"
    assert message in proc.stderr
    assert events == [], "the protocol goes to FLYWHEEL_PROGRESS_FILE"
    lines = [json.loads(line) for line in progress.read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["event"] == "fatal" and message in lines[0]["message"]


def test_deepspeed_batch_derivation():
    import argparse

    from train import training_settings

    args = argparse.Namespace(
        micro_batch=8, grad_accum=1, lr=1e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, grad_clip=1.0,
        bf16=None, warmup_steps=2, min_lr_ratio=0.1, deepspeed_config=None,
    )
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"train_batch_size": 32, "train_micro_batch_size_per_gpu": 4}, f)
    args.deepspeed_config = f.name
    try:
        settings = training_settings(args, world_size=2, total_steps=10)
    finally:
        os.unlink(f.name)
    assert (settings["microBatch"], settings["gradAccum"], settings["globalBatch"]) == (4, 4, 32)
