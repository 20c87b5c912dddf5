"""Small helpers: image grids of samples."""

from sig_keras.utils.image_grid import image_grid
from sig_keras.utils.image_grid import save_image_grid
