"""paddle_binbert.cpu_tuning: MKL's AVX2 kernels on AMD CPUs only, never overriding the user."""

import os
import subprocess
import sys

import pytest

from paddle_binbert.cpu_tuning import OPT_OUT, enable_mkl_avx2_on_amd

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
        (AMD, {}, "5", True),
        (INTEL, {}, None, False),  # Intel: MKL's own dispatch (the variable would cap AVX-512 at AVX2)
        (AMD_NO_AVX2, {}, None, False),  # AVX2 kernels would not run there
        (AMD, {"MKL_DEBUG_CPU_TYPE": "2"}, "2", False),  # the user's setting wins
        (AMD, {OPT_OUT: "0"}, None, False),  # opted out
        (AMD, {OPT_OUT: "1"}, "5", True),
        ("processor\t: 0\n", {}, None, False),  # no vendor or flags: nothing is assumed
    ],
)
def test_sets_the_variable_only_on_amd_with_avx2_and_never_over_the_user(tmp_path, text, env, expected, changed):
    assert enable_mkl_avx2_on_amd(env, _cpuinfo(tmp_path, text)) is changed
    assert env.get("MKL_DEBUG_CPU_TYPE") == expected


def test_an_unreadable_cpuinfo_changes_nothing(tmp_path):
    env = {}
    assert enable_mkl_avx2_on_amd(env, str(tmp_path / "missing")) is False and env == {}


def test_importing_the_package_applies_it_without_importing_paddle(tmp_path):
    code = (
        "import os, sys; import paddle_binbert; from paddle_binbert.machine import cpu_vendor_and_flags; "
        "cpu = cpu_vendor_and_flags(); "
        "want = '5' if cpu and cpu[0] == 'AuthenticAMD' and 'avx2' in cpu[1] else None; "
        "assert os.environ.get('MKL_DEBUG_CPU_TYPE') == want, (os.environ.get('MKL_DEBUG_CPU_TYPE'), want); "
        "assert 'paddle' not in sys.modules"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_DEBUG_CPU_TYPE", OPT_OUT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    env[OPT_OUT] = "0"
    code_off = "import os, paddle_binbert; assert 'MKL_DEBUG_CPU_TYPE' not in os.environ"
    subprocess.run([sys.executable, "-c", code_off], check=True, env=env)
