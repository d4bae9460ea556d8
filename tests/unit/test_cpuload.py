"""busy_cores counts the work running now, not the load average."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ktools.cpuload import busy_cores


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux /proc")
def test_a_spinning_process_is_counted():
    idle = busy_cores(0.3)
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = busy_cores(0.5)
    finally:
        spin.kill()
        spin.wait()
    assert 0.0 <= idle <= (os.cpu_count() or 1)
    assert busy >= 0.7  # one core spinning (other jobs on the machine only add to it)
