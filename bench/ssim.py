"""Structural similarity (Wang et al. 2004) on luma, with the usual 11x11 Gaussian window."""

from __future__ import annotations

import numpy as np

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _gaussian_kernel(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - size // 2
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 'valid' convolution: only windows that fit inside the image."""
    rows = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="valid"), 1, image)
    return np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="valid"), 0, rows)


def luma(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float64)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two same-sized RGB (H, W, 3) uint8 arrays."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    x, y = luma(a), luma(b)
    kernel = _gaussian_kernel()
    mu_x, mu_y = _blur(x, kernel), _blur(y, kernel)
    var_x = _blur(x * x, kernel) - mu_x**2
    var_y = _blur(y * y, kernel) - mu_y**2
    cov = _blur(x * y, kernel) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + C1) * (2 * cov + C2)
    denominator = (mu_x**2 + mu_y**2 + C1) * (var_x + var_y + C2)
    return float(np.mean(numerator / denominator))
