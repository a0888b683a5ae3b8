"""The names of the corruptions, severities, perturbations and evaluation protocols, declared once.

Torch-free, so that the command line can offer and count them without importing the generators
(:mod:`ppsearch.robustness.corruptions`, :mod:`ppsearch.robustness.perturbations`) or the metrics
(:mod:`ppsearch.robustness.metrics`), which take their lists from here.
"""
# CIFAR-10-C / ImageNet-C: the 15 corruptions of the benchmark (what mCE averages) ...
BENCHMARK_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
# ... and the 4 extras, held out of mCE
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL_CORRUPTIONS = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS
SEVERITIES = (1, 2, 3, 4, 5)

# CIFAR-10-P / ImageNet-P: the 10 test perturbations and the 4 validation ones
TEST_PERTURBATIONS = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "snow", "brightness",
                      "translate", "rotate", "tilt", "scale")
VALIDATION_PERTURBATIONS = ("speckle_noise", "gaussian_blur", "spatter", "shear")
ALL_PERTURBATIONS = TEST_PERTURBATIONS + VALIDATION_PERTURBATIONS

# the evaluation protocols (what each one fixes: ppsearch.robustness.metrics.PROTOCOLS)
SEED_PAPER = "seed-paper"
HENDRYCKS = "hendrycks"
PROTOCOL_NAMES = (SEED_PAPER, HENDRYCKS)
