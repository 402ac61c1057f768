"""A GPT-2-shaped decoder-only transformer whose parameters carry Hugging Face GPT2LMHeadModel's names and layouts.

A state dict of this model loads into `transformers.GPT2LMHeadModel` without renaming: Conv1D weights are stored as
[in, out] (y = x @ W + b), the blocks live under `transformer.h.<i>`, and the head is `lm_head.weight` only when it
is not tied to the token embedding. `save_model_files` writes the registered model (`model.safetensors` and
`model-config.json`); `load_model_files` reads them back, checking every tensor's name and shape.
"""
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

MODEL_WEIGHTS = "model.safetensors"
MODEL_CONFIG = "model-config.json"
MODEL_FILES = [MODEL_WEIGHTS, MODEL_CONFIG]
LAYER_NORM_EPSILON = 1e-5
ACTIVATION = "gelu_new"


class ModelFilesError(Exception):
    """The model files are missing, unreadable, or do not fit the model they are loaded into."""


@dataclass(frozen=True)
class GPTConfig:
    n_layer: int
    n_head: int
    n_embd: int
    n_positions: int
    vocab_size: int
    tied_head: bool = True

    def to_json(self):
        """The `model-config.json` document."""
        return {
            "architecture": "gpt2",
            "nLayer": self.n_layer,
            "nHead": self.n_head,
            "nEmbd": self.n_embd,
            "nPositions": self.n_positions,
            "vocabSize": self.vocab_size,
            "tiedHead": self.tied_head,
            "layerNormEpsilon": LAYER_NORM_EPSILON,
            "activation": ACTIVATION,
        }

    @staticmethod
    def from_json(doc, where=MODEL_CONFIG):
        if not isinstance(doc, dict):
            raise ModelFilesError(f"{where} is not a JSON object")
        if doc.get("architecture") != "gpt2":
            raise ModelFilesError(f"{where} describes architecture {doc.get('architecture')!r}, not 'gpt2'")
        for key, expected in (("layerNormEpsilon", LAYER_NORM_EPSILON), ("activation", ACTIVATION)):
            if key in doc and doc[key] != expected:
                raise ModelFilesError(f"{where} has {key} {doc[key]!r}; this model uses {expected!r}")
        values = {}
        for key, field in (
            ("nLayer", "n_layer"),
            ("nHead", "n_head"),
            ("nEmbd", "n_embd"),
            ("nPositions", "n_positions"),
            ("vocabSize", "vocab_size"),
        ):
            value = doc.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ModelFilesError(f"{where} needs {key} as a positive integer, got {value!r}")
            values[field] = value
        tied = doc.get("tiedHead", True)
        if not isinstance(tied, bool):
            raise ModelFilesError(f"{where} needs tiedHead as true or false, got {tied!r}")
        config = GPTConfig(tied_head=tied, **values)
        config.validate(where)
        return config

    def validate(self, where="the model configuration"):
        if self.n_embd % self.n_head != 0:
            raise ModelFilesError(f"{where}: n_embd {self.n_embd} is not divisible by n_head {self.n_head}")

    def describe(self):
        return ", ".join(f"{k}={v}" for k, v in asdict(self).items())


class Conv1D(nn.Module):
    """Hugging Face's Conv1D: a linear layer whose weight is stored [in, out]."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        shape = x.shape[:-1] + (self.weight.shape[1],)
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(shape)


class Attention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.c_attn = Conv1D(config.n_embd, 3 * config.n_embd)
        self.c_proj = Conv1D(config.n_embd, config.n_embd)

    def forward(self, x):
        batch, time, width = x.shape
        q, k, v = self.c_attn(x).split(width, dim=2)
        q, k, v = (t.view(batch, time, self.n_head, width // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(batch, time, width))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = Conv1D(config.n_embd, 4 * config.n_embd)
        self.c_proj = Conv1D(4 * config.n_embd, config.n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=LAYER_NORM_EPSILON)
        self.attn = Attention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=LAYER_NORM_EPSILON)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        config.validate()
        self.config = config
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(config.vocab_size, config.n_embd),
                "wpe": nn.Embedding(config.n_positions, config.n_embd),
                "h": nn.ModuleList(Block(config) for _ in range(config.n_layer)),
                "ln_f": nn.LayerNorm(config.n_embd, eps=LAYER_NORM_EPSILON),
            }
        )
        # A tied head is the token embedding itself (Hugging Face then omits lm_head.weight from the files).
        self.lm_head = None if config.tied_head else nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        """GPT-2's initialization: N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layer)."""
        for name, param in self.named_parameters():
            if name.endswith(".bias"):
                param.zero_()
            elif ".ln_" in name or name.startswith("transformer.ln_f"):
                param.fill_(1.0)
            elif name.endswith("c_proj.weight"):
                param.normal_(0.0, 0.02 / math.sqrt(2 * self.config.n_layer))
            else:
                param.normal_(0.0, 0.02)

    def forward(self, idx):
        time = idx.shape[1]
        if time > self.config.n_positions:
            raise ValueError(f"a sequence of {time} tokens is longer than n_positions {self.config.n_positions}")
        positions = torch.arange(time, device=idx.device)
        x = self.transformer["wte"](idx) + self.transformer["wpe"](positions)
        for block in self.transformer["h"]:
            x = block(x)
        x = self.transformer["ln_f"](x)
        head = self.transformer["wte"].weight if self.lm_head is None else self.lm_head.weight
        return F.linear(x, head)

    def flops_per_token(self):
        """Training FLOPs per token: 6 N (N = non-embedding parameters + the head matmul) + 12 L C d (attention)."""
        c = self.config
        blocks = sum(p.numel() for n, p in self.named_parameters() if n.startswith("transformer.h."))
        n = blocks + sum(p.numel() for p in self.transformer["ln_f"].parameters()) + c.vocab_size * c.n_embd
        return 6 * n + 12 * c.n_layer * c.n_positions * c.n_embd


def expected_shapes(config):
    """Every tensor of the model files: HF name -> shape."""
    d, shapes = config.n_embd, {}
    shapes["transformer.wte.weight"] = (config.vocab_size, d)
    shapes["transformer.wpe.weight"] = (config.n_positions, d)
    for i in range(config.n_layer):
        p = f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            shapes[p + ln + ".weight"] = (d,)
            shapes[p + ln + ".bias"] = (d,)
        for name, n_in, n_out in (("attn.c_attn", d, 3 * d), ("attn.c_proj", d, d), ("mlp.c_fc", d, 4 * d), ("mlp.c_proj", 4 * d, d)):
            shapes[p + name + ".weight"] = (n_in, n_out)
            shapes[p + name + ".bias"] = (n_out,)
    shapes["transformer.ln_f.weight"] = (d,)
    shapes["transformer.ln_f.bias"] = (d,)
    if not config.tied_head:
        shapes["lm_head.weight"] = (config.vocab_size, d)
    return shapes


def weights_sha256(state):
    """sha256 over the float32 bytes of every tensor, in sorted-name order (a model, or a full state dict)."""
    if isinstance(state, nn.Module):
        state = state.state_dict()
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu", torch.float32).contiguous()
        digest.update(tensor.numpy())  # the buffer itself: no copy, and hashlib releases the GIL while hashing
    return digest.hexdigest()


def file_tensors(state, config):
    """A full state dict as the model files hold it: contiguous float32 CPU tensors, a tied head left out."""
    names = expected_shapes(config)
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items() if k in names}


def save_model_files(state, config, folder):
    """Writes model.safetensors (HF names, tied head omitted) and model-config.json; returns their names."""
    from safetensors.torch import save_file

    tensors = file_tensors(state, config)
    save_file(tensors, os.path.join(folder, MODEL_WEIGHTS), metadata={"format": "pt"})
    with open(os.path.join(folder, MODEL_CONFIG), "w", encoding="utf-8") as f:
        json.dump(config.to_json(), f, indent=2)
        f.write("\n")
    return list(MODEL_FILES)


def read_model_config(folder):
    path = os.path.join(folder, MODEL_CONFIG)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise ModelFilesError(f"cannot read {path}: {e}") from e
    return GPTConfig.from_json(doc, path)


def read_model_tensors(folder, config):
    """The tensors of folder/model.safetensors, checked against `config`'s names and shapes."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = os.path.join(folder, MODEL_WEIGHTS)
    if not os.path.isfile(path):
        raise ModelFilesError(f"{path} does not exist")
    try:
        tensors = load_file(path)
    except (OSError, SafetensorError, ValueError) as e:
        raise ModelFilesError(f"cannot read {path}: {e}") from e
    expected = expected_shapes(config)
    problems = []
    for name, shape in expected.items():
        if name not in tensors:
            problems.append(f"tensor {name} is missing (expected shape {list(shape)})")
        elif tuple(tensors[name].shape) != shape:
            problems.append(f"tensor {name} has shape {list(tensors[name].shape)}, expected {list(shape)}")
    for name in sorted(set(tensors) - set(expected)):
        problems.append(f"unexpected tensor {name} with shape {list(tensors[name].shape)}")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ModelFilesError(f"{path} does not fit the model ({config.describe()}): " + "; ".join(problems[:5]) + more)
    return {k: v.to(torch.float32) for k, v in tensors.items()}


def load_model_files(folder, model):
    """Loads folder's model files into `model` (a plain GPT), checking the config and every tensor's shape."""
    tensors = read_model_tensors(folder, model.config)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or [m for m in missing if m != "lm_head.weight"]:
        raise ModelFilesError(f"{os.path.join(folder, MODEL_WEIGHTS)}: missing {missing}, unexpected {unexpected}")


def write_hf_directory(model_files_dir, out_dir):
    """A Hugging Face directory (config.json, model.safetensors, generation_config.json) from the model files."""
    import shutil

    config = read_model_config(model_files_dir)
    read_model_tensors(model_files_dir, config)
    os.makedirs(out_dir, exist_ok=True)
    shutil.copyfile(os.path.join(model_files_dir, MODEL_WEIGHTS), os.path.join(out_dir, MODEL_WEIGHTS))
    eot = min(50256, config.vocab_size - 1)  # GPT-2's end-of-text id
    hf = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_embd": config.n_embd,
        "n_positions": config.n_positions,
        "n_ctx": config.n_positions,
        "vocab_size": config.vocab_size,
        "activation_function": ACTIVATION,
        "layer_norm_epsilon": LAYER_NORM_EPSILON,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "tie_word_embeddings": config.tied_head,
        "torch_dtype": "float32",
    }
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(hf, f, indent=2)
    with open(os.path.join(out_dir, "generation_config.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token_id": eot, "eos_token_id": eot}, f, indent=2)
    return out_dir
