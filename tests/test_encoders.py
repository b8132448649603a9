"""relift.hardware and the encoder's dtype choice: decided by what the CPU declares and a cosine
check, never by a timing that a busy machine distorts."""

import numpy as np
import pytest
import torch

from relift import encoders, hardware


@pytest.mark.parametrize(
    "flags, native",
    [
        ("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile", True),
        ("flags\t\t: fpu sse2 avx2 amx_bf16", True),
        ("flags\t\t: fpu sse2 avx2 avx512f", False),
    ],
)
def test_cpu_native_bf16_reads_the_flags(tmp_path, flags, native):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\n{flags}\n")
    assert hardware.cpu_native_bf16(info) is native
    assert hardware.cpu_native_bf16(tmp_path / "missing") is False


SAMPLE = ["the house", "a green tree", "of the people", "State of the Union", "we will"]


def test_no_native_bf16_means_fp32_without_loading_the_encoder(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_native_bf16", lambda *a: False)
    monkeypatch.setattr(encoders, "load_encoder", lambda *a: pytest.fail("loaded an encoder"))
    dtype, why = encoders.choose_dtype("minilm", torch.device("cpu"), SAMPLE)
    assert dtype == torch.float32 and "no avx512_bf16/amx_bf16 flag" in why


@pytest.mark.parametrize("min_cosine, expected", [(0.99, torch.bfloat16), (1.01, torch.float32)])
def test_native_bf16_is_used_when_the_embeddings_stay_close(monkeypatch, min_cosine, expected):
    """The real bundled MiniLM in fp32 and bf16: bf16 rows keep cosine >= 0.99 to fp32 (chosen);
    no dtype reaches an impossible 1.01 (fp32 kept), whatever the timing."""
    monkeypatch.setattr(hardware, "cpu_native_bf16", lambda *a: True)
    dtype, why = encoders.choose_dtype("minilm", torch.device("cpu"), SAMPLE, min_cosine=min_cosine)
    assert dtype == expected, why
    worst = float(why.split("phrases ")[1].split(",")[0])
    assert 0.99 <= worst <= 1.0 + 1e-6 and np.isfinite(worst)


def test_explicit_dtypes_are_kept():
    assert encoders.choose_dtype("minilm", torch.device("cpu"), SAMPLE, "fp32")[0] == torch.float32
    assert encoders.choose_dtype("minilm", torch.device("cpu"), SAMPLE, "bf16")[0] == torch.bfloat16
