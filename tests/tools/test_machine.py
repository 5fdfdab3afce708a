"""The CPU a figure was measured on: model name and the speed-relevant features, from /proc/cpuinfo."""

from codectrace import precision
from codectrace.machine import cpu_info, cpu_summary

CPUINFO = """processor\t: 0
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16

processor\t: 1
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16
"""


def test_the_summary_names_the_model_and_the_features_that_change_speed(tmp_path):
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    summary = cpu_summary(str(tmp_path / "cpuinfo"))
    assert summary.startswith("AMD EPYC 9R14 (AVX2, AVX-512, VNNI, bf16), ") and summary.endswith(" cores")


def test_an_unreadable_cpuinfo_gives_an_unknown_cpu_not_an_error(tmp_path):
    assert cpu_info(str(tmp_path / "missing")) == ("", set())
    assert cpu_summary(str(tmp_path / "missing")).startswith("unknown CPU, ")


def test_bf16_counts_as_fast_only_with_native_bf16_or_amx(monkeypatch):
    monkeypatch.setattr(precision, "cpu_info", lambda: ("x", {"avx2", "avx512f"}))
    assert not precision.cpu_has_fast_bf16()
    monkeypatch.setattr(precision, "cpu_info", lambda: ("x", {"avx2", "amx_bf16"}))
    assert precision.cpu_has_fast_bf16()
