"""ImageNet-C's corruption names and severities, spelled as its released folders are (nothing to
import beyond this module: the engine's metrics and the corruption writer share them)."""

CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
"""The 15 benchmark corruptions, in ImageNet-C's order (noise, blur, weather, digital)."""
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
"""ImageNet-C's 4 held-out (validation) corruptions."""
SEVERITIES = (1, 2, 3, 4, 5)
