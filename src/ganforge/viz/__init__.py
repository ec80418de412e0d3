"""Pictures of samples: image grids, 1D histograms, 2D scatter plots, panels of text lines."""

from ganforge.viz.grid import make_grid, save_grid
from ganforge.viz.plots import save_histogram, save_scatter
from ganforge.viz.text import save_text_panel

__all__ = ["make_grid", "save_grid", "save_histogram", "save_scatter", "save_text_panel"]
