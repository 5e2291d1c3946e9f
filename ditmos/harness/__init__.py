"""ditmos.harness: talk to a device over the serial protocol and measure it.

* ``protocol``  frames, CRC-16/CCITT-FALSE, typed messages, streaming decoder
* ``transport`` one pyserial transport for ports, ptys and ``socket://`` (QEMU)
* ``client``    sequence numbers, bounded retries, reboot detection
* ``marks``     instruction counts from the QEMU plugin log (cost_kind 1)
* ``evaluate``  ``ditmos evaluate``: test split -> devices -> samples.jsonl, report.json
* ``faults``    a fault-injecting proxy for tests (drops, bit flips, stalls, reboots)
"""
