"""job_outcomes' formatting: every line it prints is one valid point, whatever Galaxy stores."""

from __future__ import annotations

from collectors.job_outcomes import format_lines
from metric_contract.lineprotocol import parse_text


def test_rows_with_ids_line_protocol_cannot_carry_are_skipped_with_a_warning(capsys):
    rows = [
        ("bwa_mem", "pulsar_eu01", 8, 3),
        (
            "evil\njob_outcomes,destination_id=pulsar_eu01,tool_id=forged ok=999i",
            "pulsar_eu01",
            1,
            0,
        ),
        ("trailing\\", "pulsar_eu01", 2, 0),
        ("cat1", "dest\u2028x", 1, 1),
        ("a\\ b", "pulsar_eu01", 1, 0),
        ("toolshed/repos/iuc/x y,z=1", "pulsar uk", 4, 1),
    ]
    lines = format_lines(rows, window_days=30)
    points = list(parse_text("\n".join(lines)))
    assert len(lines) == len(points) == 2
    assert [(p.tags["tool_id"], p.tags["destination_id"]) for p in points] == [
        ("bwa_mem", "pulsar_eu01"),
        ("toolshed/repos/iuc/x y,z=1", "pulsar uk"),
    ]
    assert points[0].fields == {"ok": 8, "error": 3, "window_days": 30}
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 4
    assert all(
        w.startswith("job_outcomes: warning: skipped the row of destination ") for w in warnings
    )
    assert (
        "tag tool_id value 'evil\\njob_outcomes" in warnings[0]
        and "line break (U+000A)" in warnings[0]
    )
    assert "'trailing\\\\' ends with a backslash" in warnings[1]
    assert "tag destination_id value 'dest\\u2028x' contains a line break (U+2028)" in warnings[2]
    assert "has a backslash before ' '" in warnings[3]
