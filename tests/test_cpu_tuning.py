"""paddle_binbert.cpu_tuning: MKL's AVX2 kernels on AMD CPUs, only when asked, never overriding the user."""

import os
import subprocess
import sys

import pytest

from paddle_binbert.cpu_tuning import OPT_IN, enable_mkl_avx2_on_amd

AMD = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 avx512f\n"
AMD_NO_AVX2 = AMD.replace(" avx2", "")
INTEL = AMD.replace("AuthenticAMD", "GenuineIntel").replace("AMD EPYC", "Intel Xeon")


def _cpuinfo(tmp_path, text):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "text, env, expected, changed",
    [
        (AMD, {OPT_IN: "1"}, "5", True),
        (AMD, {}, None, False),  # opt-in: it changes Paddle's GELU tail, which the packed engine mirrors
        (AMD, {OPT_IN: "0"}, None, False),
        (INTEL, {OPT_IN: "1"}, None, False),  # Intel: MKL's own dispatch (would cap AVX-512 at AVX2)
        (AMD_NO_AVX2, {OPT_IN: "1"}, None, False),  # AVX2 kernels would not run there
        (AMD, {OPT_IN: "1", "MKL_DEBUG_CPU_TYPE": "2"}, "2", False),  # the user's setting wins
        ("processor\t: 0\n", {OPT_IN: "1"}, None, False),  # no vendor or flags: nothing is assumed
    ],
)
def test_only_when_asked_on_amd_with_avx2_and_never_over_the_user(tmp_path, text, env, expected, changed):
    assert enable_mkl_avx2_on_amd(env, _cpuinfo(tmp_path, text)) is changed
    assert env.get("MKL_DEBUG_CPU_TYPE") == expected


def test_an_unreadable_cpuinfo_changes_nothing(tmp_path):
    env = {OPT_IN: "1"}
    assert enable_mkl_avx2_on_amd(env, str(tmp_path / "missing")) is False and "MKL_DEBUG_CPU_TYPE" not in env


def test_importing_the_package_applies_it_only_when_asked_and_without_importing_paddle():
    code = (
        "import os, sys; import paddle_binbert; from paddle_binbert.machine import cpu_vendor_and_flags; "
        "cpu = cpu_vendor_and_flags(); "
        "want = '5' if cpu and cpu[0] == 'AuthenticAMD' and 'avx2' in cpu[1] else None; "
        "assert os.environ.get('MKL_DEBUG_CPU_TYPE') == want, (os.environ.get('MKL_DEBUG_CPU_TYPE'), want); "
        "assert 'paddle' not in sys.modules"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_DEBUG_CPU_TYPE", OPT_IN)}
    code_off = "import os, paddle_binbert; assert 'MKL_DEBUG_CPU_TYPE' not in os.environ"
    subprocess.run([sys.executable, "-c", code_off], check=True, env=env)  # the default: MKL's own choice
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(env, **{OPT_IN: "1"}))
