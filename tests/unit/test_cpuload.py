"""busy_cores counts the work running now, not the load average."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import ktools.cpuload
from ktools.cpuload import busy_cores, sampled_busy_cores


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux /proc")
def test_a_spinning_process_is_counted():
    idle = sampled_busy_cores(0.3)
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = sampled_busy_cores(0.5)
    finally:
        spin.kill()
        spin.wait()
    assert 0.0 <= idle <= (os.cpu_count() or 1)
    assert busy >= 0.7  # one core spinning (other jobs on the machine only add to it)


def test_load_average_beyond_our_own_cores_counts(monkeypatch):
    cores = os.cpu_count() or 1
    monkeypatch.setattr(ktools.cpuload, "sampled_busy_cores", lambda seconds: 0.1)
    # Just after our own step kept every core busy: the load average says `cores`, nothing else runs.
    monkeypatch.setattr(os, "getloadavg", lambda: (float(cores), 1.0, 1.0))
    assert busy_cores() == pytest.approx(0.1)
    # Bursty jobs of others between two samples: the excess over our cores is theirs.
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 2.4, 1.0, 1.0))
    assert busy_cores() == pytest.approx(2.4)
