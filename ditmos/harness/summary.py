"""A few lines summarising ``report.json`` for the terminal."""

from __future__ import annotations

from ditmos.harness.protocol import clock_status_text


def _pct(v):
    return "n/a" if v is None else f"{100 * v:.2f}%"


def summary_lines(report: dict) -> list[str]:
    lines = [
        f"samples: {report['samples']} of {report['samples_planned']}"
        + ("" if report["complete"] else " (incomplete)"),
        f"accuracy on device: {_pct(report['accuracy'])}   int8 reference: "
        f"{_pct(report['accuracy_int8_reference'])}   float: {_pct(report['accuracy_float'])}",
        f"mismatches with the host reference: {report['mismatches']}",
    ]
    for m in report["mismatch_list"][:20]:
        lines.append(
            f"  sample {m['index']}: device {m['device']} (route {m['device_route']}), "
            f"reference {m['reference']} (route {m['reference_route']})"
        )
    if len(report["mismatch_list"]) > 20:
        lines.append(f"  ... {len(report['mismatch_list']) - 20} more in report.json")
    lat = report["latency"]
    if lat.get("unit"):
        unit = lat["unit"] + (f", {lat['clock']}" if lat.get("clock") else "")
        lines.append(f"latency ({unit}): median {lat['median']:.6g}  p95 {lat['p95']:.6g}  max {lat['max']:.6g}")
    elif lat.get("note"):
        lines.append(f"latency: unavailable ({lat['note']})")
    pipe = report.get("input_pipeline")
    if pipe and pipe.get("available"):
        lines.append(
            f"input pipeline on the device (raw {pipe['raw']}, {pipe['unit']}): median "
            f"{pipe['median']:.6g}  max {pipe['max']:.6g}  share of pipeline + inference "
            f"{100 * pipe['share_median']:.1f}%"
        )
    elif pipe:
        lines.append(f"input pipeline on the device (raw {pipe['raw']}): cost not measured")
    mem = report["memory"]
    if mem:
        lines.append("memory: " + "  ".join(f"{k} {v}" for k, v in mem.items() if isinstance(v, int)))
    lines.append(f"routing (device): {report['routing']['device']}")
    for d in report.get("devices", []):
        if d.get("board"):
            clock = d.get("core_clock_hz")
            mhz = f"{clock / 1e6:g} MHz" if clock else "no clock reported"
            lines.append(
                f"device {d['url']}: {d['board']}, core clock {mhz}, bring-up "
                f"{clock_status_text(d.get('clock_status'))}"
            )
        link = d.get("link") or {}
        if link.get("retransmissions") or d.get("reboots"):
            lines.append(
                f"link {d['url']}: {link.get('retransmissions', 0)} retransmissions, "
                f"{link.get('crc_errors', 0)} bad frames, {len(d.get('reboots') or [])} "
                f"reboots detected"
            )
    return lines
