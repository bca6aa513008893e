"""bench.long builds its long clip by remuxing: the result must be as long as asked and decode to the end."""

from __future__ import annotations

import pytest

from deepscan.media import iter_windows, probe


def test_long_clip_is_as_long_as_asked_and_decodes_to_the_end(tmp_path, monkeypatch):
    import bench.long as long

    monkeypatch.setattr(long, "ROOT", tmp_path)
    clip = long.build_long_clip(0.5, 144)  # three 10 s segments end to end
    info = probe(clip)
    assert info.width == 256 and info.height == 144 and info.has_audio
    assert info.duration_s == pytest.approx(30.0, abs=0.5)
    windows = list(iter_windows(clip, info=info))
    assert len(windows) == pytest.approx(30 / (windows[0].end_s - windows[0].start_s), abs=1)
    assert windows[-1].end_s == pytest.approx(30.0, abs=0.6)
    assert all(w.has_frames and w.waveform.size for w in windows)
    assert long.build_long_clip(0.5, 144) == clip  # built once
