"""Training precision: bf16 matmuls where the CPU has them, float32 on request, same learning."""

import copy

import pytest
import torch

from model.api import DeviceError, Session
from model.device import cpu_has_bf16_dot, training_dtype

CPU = torch.device("cpu")


def _cpuinfo(tmp_path, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nvendor_id\t: X\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    return str(path)


def test_bf16_dot_products_are_read_from_the_cpu_flags(tmp_path):
    assert cpu_has_bf16_dot(_cpuinfo(tmp_path, "fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni"))
    assert cpu_has_bf16_dot(_cpuinfo(tmp_path, "fpu avx512f amx_bf16 amx_tile"))
    # avx512f alone (Skylake) only emulates bf16, which is slower than float32
    assert not cpu_has_bf16_dot(_cpuinfo(tmp_path, "fpu sse2 avx2 avx512f avx512bw"))
    assert not cpu_has_bf16_dot(str(tmp_path / "missing"))  # not Linux: stay float32


def test_precision_names_map_to_dtypes(monkeypatch):
    assert training_dtype(CPU, "fp32") is None
    assert training_dtype(CPU, "bf16") is torch.bfloat16
    assert training_dtype(CPU, "auto") is (torch.bfloat16 if cpu_has_bf16_dot() else None)
    cuda = torch.device("cuda")
    # no GPU here: the policy is checked against the compute capability torch would report
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert training_dtype(cuda, "auto") is torch.bfloat16  # H100
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert training_dtype(cuda, "auto") is None  # T4: bf16 would be emulated
    assert training_dtype(cuda, "bf16") is torch.bfloat16  # asked for: still honoured
    assert training_dtype(torch.device("mps"), "auto") is None
    with pytest.raises(DeviceError, match="use --precision fp32"):
        training_dtype(torch.device("mps"), "bf16")
    with pytest.raises(DeviceError, match="unknown precision 'fp16'"):
        training_dtype(CPU, "fp16")


def test_a_bad_precision_fails_before_the_corpus_is_read():
    with pytest.raises(DeviceError, match="unknown precision"):
        Session.open("/no/such/corpus.txt", device="cpu", precision="half")


def _losses(precision, steps=12):
    session = Session.open(None, preset="tiny", device="cpu", precision=precision,
                           overrides={"batch_size": 8})
    return session, [session.step().loss for _ in range(steps)]


def test_bf16_training_follows_float32_training():
    s32, fp32 = _losses("fp32")
    s16, bf16 = _losses("bf16")
    assert s32.info().precision == "fp32" and s16.info().precision == "bf16"
    assert bf16 != fp32  # the setting really changes the products...
    assert bf16[0] == pytest.approx(fp32[0], rel=1e-3)  # ...not what they compute
    assert max(abs(a - b) for a, b in zip(bf16, fp32)) < 0.1
    assert s16.evaluate() == pytest.approx(s32.evaluate(), abs=0.1)
    # the probe stays an exact float32 softmax whatever the training precision: bf16
    # logits would be off by ~1% of p
    probe = s16.probe(0, 8)
    model = copy.deepcopy(s16._trainer.model).double()
    logits, _ = model(torch.tensor([probe.context_ids]))
    exact = torch.softmax(logits[0], dim=0)[probe.label.token_id].item()
    assert probe.label.prob == pytest.approx(exact, rel=1e-5)
