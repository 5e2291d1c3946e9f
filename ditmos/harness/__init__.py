"""ditmos.harness: talk to a device over the serial protocol and measure it.

* ``protocol``    frames, CRC-16/CCITT-FALSE, typed messages, streaming decoder
* ``transport``   one pyserial transport for ports, ptys and ``socket://`` (QEMU)
* ``client``      sequence numbers, bounded retries, reboot detection
* ``marks``       instruction counts from the QEMU plugin log (cost_kind 1)
* ``evaluate``    ``ditmos evaluate``: test split -> devices -> samples.jsonl, report.json,
  built from ``workload`` (run + build -> inputs, reference answers, quoted facts),
  ``worker`` (one thread per device), ``records`` (the files, written so nothing is
  lost), ``eval_report`` (report.json) and ``fleet`` (QEMU / host processes for --emulate)
* ``faults``      a fault-injecting proxy for tests (drops, bit flips, stalls, reboots)
"""
