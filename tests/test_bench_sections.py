"""bench.sections: each bench rewrites only its own section of BENCHMARKS.md."""

from __future__ import annotations

from bench.sections import markers, write_section


def test_a_section_is_replaced_in_place_and_the_rest_kept(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    begin, end = markers("ray")
    path.write_text(f"# Benchmarks\n\nintro\n\n{begin}\nold numbers\n{end}\n\nnotes written by hand\n")
    write_section("ray", "new numbers", path=path)
    assert path.read_text() == f"# Benchmarks\n\nintro\n\n{begin}\nnew numbers\n{end}\n\nnotes written by hand\n"
    write_section("ray", f"{begin}\nnewer\n{end}", path=path)  # a body that carries its markers is not wrapped twice
    assert path.read_text().count(begin) == 1 and "newer" in path.read_text() and "notes written by hand" in path.read_text()


def test_a_missing_section_is_appended_under_its_heading(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    write_section("quality", "table", heading="## Detection on real media", path=path)
    write_section("scan", "rows", path=path)
    text = path.read_text()
    assert text.startswith("# Benchmarks\n\n## Detection on real media\n\n<!-- bench:quality -->\ntable\n")
    assert text.endswith("<!-- bench:scan -->\nrows\n<!-- /bench:scan -->\n")
