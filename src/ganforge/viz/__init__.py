"""Pictures of samples: image grids, 1D histograms, 2D scatter plots."""

from ganforge.viz.grid import make_grid, save_grid
from ganforge.viz.plots import save_histogram, save_scatter

__all__ = ["make_grid", "save_grid", "save_histogram", "save_scatter"]
