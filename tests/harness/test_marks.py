"""Pairing the emulator plugin's instruction-count marks with INFER answers."""

import pytest

from ditmos.errors import DitmosError
from ditmos.harness.marks import MarkLog


def test_latest_complete_group_with_layers_by_index(tmp_path):
    log = tmp_path / "marks.log"
    log.write_text("mark 0 100\nmark 2 150\nmark 4 180\nmark 1 200\n")
    m = MarkLog(log)
    assert m.take(num_layers=4, timeout=0.1) == (100, [50, 0, 30, 0])
    # nothing new since: no answer can be paired
    with pytest.raises(DitmosError, match="no complete instruction-count marks"):
        m.take(timeout=0.05)
    # a retransmitted INFER ran twice: the latest complete group counts, a torn line waits
    with open(log, "a") as f:
        f.write("mark 0 1000\nmark 1 1090\nmark 0 2000\nmark 1 2100\nmark 0 3000\nmark 1 30")
    assert m.take(timeout=0.1) == (100, [])
    with open(log, "a") as f:
        f.write("77\n")
    assert m.take(timeout=0.1) == (77, [])
