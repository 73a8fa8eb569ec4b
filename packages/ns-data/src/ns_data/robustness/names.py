"""ImageNet-C's corruption names and severities, spelled as its released folders are, and the
names of the files the writers leave (nothing to import beyond this module: the engine's metrics
and run steps share them with the writers without loading imagecorruptions, OpenCV or SciPy)."""

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

CORRUPTIONS_RECORD = "corruptions.json"
"""The record `corrupt_set` writes last in its output folder (its presence means finished)."""
PERTURBATIONS_RECORD = "perturbations.json"
"""The record `perturb_set` writes last in its output folder."""
VIDEO_SUFFIX = ".mp4"
"""The file suffix of an ImageNet-P perturbation sequence."""
