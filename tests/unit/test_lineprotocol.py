import pytest

from metric_contract.lineprotocol import LineProtocolError, format_point, parse_line, parse_lines


def test_escaping_round_trip_for_awkward_tag_values():
    tags = {"site": 'eu west,1 "a"=b', "tool_id": "toolshed/repos/iuc/x y/1.0+galaxy0"}
    fields = {"count": 3, "note": 'say "hi", a=b \\ ok', "ratio": 0.5, "up": True}
    line = format_point("htcondor cluster,usage", tags, fields, 1_700_000_000_000_000_000)
    assert line.startswith("htcondor\\ cluster\\,usage,")
    assert 'site=eu\\ west\\,1\\ "a"\\=b' in line
    point = parse_line(line)
    assert point.measurement == "htcondor cluster,usage"
    assert point.tags == tags
    assert point.fields == fields
    assert point.time_ns == 1_700_000_000_000_000_000
    assert point.time_s == 1_700_000_000.0


def test_integers_floats_and_booleans_keep_their_types():
    point = parse_line("m f1=1i,f2=2.5,f3=t,f4=false,f5=7u,f6=-3")
    assert point.fields == {"f1": 1, "f2": 2.5, "f3": True, "f4": False, "f5": 7, "f6": -3.0}
    assert isinstance(point.fields["f1"], int)
    assert point.time_ns is None


def test_empty_tag_values_are_dropped_and_tags_sorted():
    assert format_point("m", {"b": "2", "a": "1", "c": ""}, {"v": 1}) == "m,a=1,b=2 v=1i"


@pytest.mark.parametrize(
    "line, problem",
    [
        ("onlymeasurement", "expected"),
        ("m,site f=1", "bad tag"),
        ("m f=abc", "bad field value"),
        ('m f="unterminated', "unterminated"),
        ("m f=1 notatime", "bad timestamp"),
    ],
)
def test_malformed_lines_name_the_problem(line, problem):
    with pytest.raises(LineProtocolError, match=problem):
        parse_line(line)


def test_errors_carry_the_line_number_and_comments_are_skipped():
    text = ["# header", "", "m v=1i 1", "m v=oops 2"]
    with pytest.raises(LineProtocolError, match="line 4"):
        list(parse_lines(text))
    assert [p.fields["v"] for p in parse_lines(text[:3])] == [1]


def test_non_finite_floats_and_empty_fields_are_refused():
    with pytest.raises(LineProtocolError, match="finite"):
        format_point("m", {}, {"v": float("nan")})
    with pytest.raises(LineProtocolError, match="no fields"):
        format_point("m", {}, {})
