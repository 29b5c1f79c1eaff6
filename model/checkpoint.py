"""Checkpoints: one safetensors file of weights, AdamW state and settings, written atomically."""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from model.errors import CheckpointError, DamagedCheckpoint
from model.gpt import padded_vocab

FORMAT = "nnio-tui-checkpoint"
VERSION = "1"
_OPTIM_FIELDS = ("exp_avg", "exp_avg_sq", "step")


def save(path: Path, model: torch.nn.Module,
         optimizer_state: Mapping[torch.nn.Parameter, Mapping[str, Any]],
         meta: dict[str, str]) -> Path:
    """Write weights, optimizer state and metadata so a crash never leaves half a file.

    Args:
        path: the destination; its folder is created if missing.
        model: the network.
        optimizer_state: AdamW's state per parameter (optimizer.state), stored beside the
            weights.
        meta: strings to store (configs as JSON, step, encoding...).

    Returns:
        The path written.
    """
    path = Path(path).expanduser()
    tensors = {f"model/{name}": t.detach().cpu().contiguous()
               for name, t in model.state_dict().items()}
    for name, p in model.named_parameters():
        for field, value in optimizer_state.get(p, {}).items():
            if field in _OPTIM_FIELDS and torch.is_tensor(value):
                tensors[f"optim/{name}/{field}"] = value.detach().cpu().contiguous()
    metadata = {**meta, "format": FORMAT, "format_version": VERSION}
    tmp_dir = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphans(path)
        # A private folder beside the target holds the half-written file, and safetensors' own
        # temporary file too, so a save killed at any moment leaves only this folder behind.
        tmp_dir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                        suffix=".tmp"))
        tmp = tmp_dir / path.name
        save_file(tensors, str(tmp), metadata=metadata)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # the usual permissions, not the temp folder's private ones
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except PermissionError:
        raise CheckpointError(
            f"cannot write {path}: permission denied; save somewhere else (--checkpoint PATH)"
        ) from None
    except OSError as e:
        raise CheckpointError(f"cannot write {path}: {e.strerror or e}") from e
    except SafetensorError as e:  # how safetensors reports a failed write (a full disk...)
        raise CheckpointError(f"cannot write {path}: {e}") from e
    finally:
        if tmp_dir is not None and tmp_dir.exists():
            shutil.rmtree(tmp_dir)
    return path


def _remove_orphans(path: Path) -> None:
    """Delete temporary files that killed saves of this checkpoint left (their process is gone).

    A save killed mid-write leaves its temporary folder behind, the size of a whole checkpoint;
    without this, a run killed again and again would fill the disk.
    """
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _fsync_dir(folder: Path) -> None:
    # makes the rename itself durable; Windows cannot open folders, and needs no such step
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_readable(path: Path) -> Path:
    """Refuse a path that is missing, a folder or unreadable, with a one-line reason."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; check the checkpoint path")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the checkpoint file inside it")
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise CheckpointError(f"cannot read {path}: {err.strerror.lower()}") from None
    return path


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a checkpoint written by save.

    Args:
        path: the .safetensors file.

    Returns:
        (tensors by name, metadata strings).
    """
    path = check_readable(path)
    damaged = f"{path} is not a nnio-tui checkpoint (safetensors) or is damaged"
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise DamagedCheckpoint(damaged)
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise DamagedCheckpoint(damaged) from e
    if meta.get("format_version") != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {meta.get('format_version')!r}, this version reads"
            f" {VERSION!r}; upgrade nnio-tui")
    return tensors, meta


def read_foreign(path: Path) -> dict:
    """Load a foreign .pt/.pth file without running code: tensors and plain containers only.

    Args:
        path: the file.

    Returns:
        Whatever plain structure it holds (usually a state dict).
    """
    path = check_readable(path)
    try:
        with warnings.catch_warnings():
            # torch warns of odd pickle protocols in a damaged file; the error below says it
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path} holds Python objects, not just tensors; refusing to unpickle it") from e
    except (RuntimeError, EOFError, ValueError, OSError, SafetensorError) as e:
        # a damaged file named .safetensors: this torch hands such names to safetensors
        raise DamagedCheckpoint(f"{path} is not a readable PyTorch state dict or is damaged") from e


def read_nanogpt(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a nanoGPT ckpt.pt as (tensors, metadata) in this module's layout, weights only.

    Args:
        path: a file saved by nanoGPT's train.py (a dict with "model" and "model_args").

    Returns:
        Weights under "model/..." and metadata for a gpt2-encoding model at its saved step.
    """
    import json

    data = read_foreign(path)
    if not (isinstance(data, dict) and isinstance(data.get("model"), dict)
            and isinstance(data.get("model_args"), dict)):
        raise CheckpointError(
            f"{path} is a PyTorch file without model settings; nnio-tui loads its own"
            " .safetensors checkpoints and nanoGPT ckpt.pt files")
    args = data["model_args"]
    if args.get("vocab_size") not in (50257, 50304):
        raise CheckpointError(
            f"{path}: vocab_size {args.get('vocab_size')} is not GPT-2's; only gpt2-encoding"
            " nanoGPT checkpoints can be loaded")
    try:
        gpt = {"vocab_size": 50257, "block_size": args["block_size"], "n_layer": args["n_layer"],
               "n_head": args["n_head"], "n_embd": args["n_embd"],
               "dropout": 0.0, "bias": bool(args.get("bias", False))}
    except KeyError as e:
        raise DamagedCheckpoint(f"{path}: model_args lacks {e}; the file is incomplete") from e
    tensors = {}
    for name, value in data["model"].items():
        name = name.removeprefix("_orig_mod.")  # torch.compile's wrapper prefix
        if name == "lm_head.weight" or name.endswith(".attn.bias"):
            continue  # tied to wte, and the old causal-mask buffer
        tensors[f"model/{name}"] = value
    wte = tensors.get("model/transformer.wte.weight")
    if isinstance(wte, torch.Tensor) and wte.dim() == 2 and wte.shape[0] == 50257:
        # a fine-tune of OpenAI's GPT-2 keeps its 50,257 rows; ours pads them (gpt.py)
        pad = wte.new_zeros(padded_vocab(50257) - 50257, wte.shape[1])
        tensors["model/transformer.wte.weight"] = torch.cat([wte, pad])
    meta = {"gpt_config": json.dumps(gpt), "train_config": "{}", "encoding": "gpt2",
            "step": str(int(data.get("iter_num", 0))), "preset": "nanogpt"}
    return tensors, meta


def restore_model(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Copy stored weights into a model built from the stored config, naming any mismatch."""
    state = {k.removeprefix("model/"): v for k, v in tensors.items() if k.startswith("model/")}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise DamagedCheckpoint(f"{path} lacks weight {missing[0]}; the file is incomplete")
    for name, value in own.items():
        if state[name].shape != value.shape:
            raise DamagedCheckpoint(
                f"{path}: weight {name} has shape {tuple(state[name].shape)},"
                f" the model expects {tuple(value.shape)}")
    model.load_state_dict(state, strict=False)


def optimizer_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], fused: bool,
                    path: Path) -> dict[torch.nn.Parameter, dict[str, torch.Tensor]]:
    """The stored AdamW moments per parameter; parameters without stored state start fresh.

    Args:
        model: the network whose parameters the state is for.
        tensors: the checkpoint's tensors.
        fused: fused AdamW keeps `step` on the parameter's device, the others on the CPU.
        path: the checkpoint, for the message when a moment's shape is wrong.
    """
    states = {}
    for name, p in model.named_parameters():
        state = {}
        for field in _OPTIM_FIELDS:
            value = tensors.get(f"optim/{name}/{field}")
            if value is not None and field != "step" and value.shape != p.shape:
                raise DamagedCheckpoint(
                    f"{path}: optimizer state {name}/{field} has shape {tuple(value.shape)},"
                    f" the weight has {tuple(p.shape)}; the file is damaged")
            if value is not None:
                state[field] = value.to(p.device if field != "step" or fused else "cpu")
        if len(state) == len(_OPTIM_FIELDS):
            states[p] = state
    return states
