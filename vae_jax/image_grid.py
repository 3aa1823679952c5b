"""PNG grids of images in [0, 1]."""
import numpy as np
from PIL import Image


def save_grid(path: str, images, columns: int = 8, scale: int = 2) -> None:
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  n, height, width, channels = images.shape
  rows = -(-n // columns)
  grid = np.ones((rows * (height + 1) + 1, columns * (width + 1) + 1, channels), np.float32)
  for i, image in enumerate(images):
    r, c = divmod(i, columns)
    grid[1 + r * (height + 1):1 + r * (height + 1) + height,
         1 + c * (width + 1):1 + c * (width + 1) + width] = image
  pixels = (grid * 255).round().astype(np.uint8)
  picture = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
  picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST).save(path)
