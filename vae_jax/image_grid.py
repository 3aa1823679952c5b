"""PNG grids of images in [0, 1]."""
import jax
import numpy as np
from PIL import Image


def tile(images, columns: int) -> np.ndarray:
  """[N, H, W, C] in [0, 1] -> one [rows (H + 1) + 1, columns (W + 1) + 1, C] array, the images
  separated and framed by white 1-pixel lines."""
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  n, height, width, channels = images.shape
  rows = -(-n // columns)
  grid = np.ones((rows * (height + 1) + 1, columns * (width + 1) + 1, channels), np.float32)
  for i, image in enumerate(images):
    r, c = divmod(i, columns)
    grid[1 + r * (height + 1):1 + r * (height + 1) + height,
         1 + c * (width + 1):1 + c * (width + 1) + width] = image
  return grid


def save_grid(path: str, images, columns: int = 8, scale: int = 2) -> None:
  """Writes the grid from process 0 only (every process computes `images`)."""
  if jax.process_index() != 0:
    return
  pixels = (tile(images, columns) * 255).round().astype(np.uint8)
  picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
  picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST).save(path)
