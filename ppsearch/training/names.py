"""The names of the compute budgets and the fields a run may change in one, declared once.

Torch-free, so that the command line offers them without importing the trainer; their sizes live
in :data:`ppsearch.training.budgets.BUDGETS`.
"""
SMOKE = "smoke"
DEMO = "demo"
SHORT = "short"
PAPER = "paper"
BUDGET_NAMES = (SMOKE, DEMO, SHORT, PAPER)

# what a run may change in its budget (``null`` for the image counts: the whole split)
# (and its recipe, for families whose papers train differently: ImageNet, DenseNet)
OVERRIDABLE = ("train_images", "epochs", "eval_images", "c_images", "p_images", "recipe")
