"""notebook.save_fig: figures are a function of the figure, and only the reference profile publishes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

from persrm_lib.run import notebook  # noqa: E402


def small_figure():
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    return fig


def test_only_the_reference_profile_writes_into_figures(tmp_path, monkeypatch):
    published = tmp_path / "figures"
    monkeypatch.setattr(notebook, "FIGURES_DIR", published)
    published.mkdir()
    (published / "05_x.png").write_bytes(b"reference")
    for profile in ("tiny", "smoke", "paper"):
        out = notebook.save_fig(small_figure(), "05_x", tmp_path / profile, profile)
        assert out == tmp_path / profile / "figures" / "05_x.png" and out.stat().st_size > 0
    assert (published / "05_x.png").read_bytes() == b"reference"  # smoke never overwrites the reference
    out = notebook.save_fig(small_figure(), "05_x", tmp_path / "cpu", "cpu")
    assert (published / "05_x.png").read_bytes() == out.read_bytes()
    assert notebook.PUBLISHED_PROFILES == ("cpu",)


def test_the_same_figure_gives_the_same_bytes(tmp_path):
    first = notebook.save_fig(small_figure(), "f", tmp_path / "a", "smoke").read_bytes()
    second = notebook.save_fig(small_figure(), "f", tmp_path / "b", "smoke").read_bytes()
    assert first == second
    plt.close("all")
