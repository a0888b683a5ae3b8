"""The names of the datasets and of the ways their images are read, declared once.

Torch-free, so that the command line offers them as choices (and refuses a typo) without importing
the loaders (:mod:`ppsearch.data.datasets`, :mod:`ppsearch.data.streaming`), which check them again
for callers of the API.
"""
FASHION_MNIST = "fashion-mnist"
CIFAR10 = "cifar10"
CIFAR100 = "cifar100"
IMAGENET = "imagenet"  # an image folder: the only dataset that may be streamed or resized
DATASETS = (FASHION_MNIST, CIFAR10, CIFAR100, IMAGENET)
# the classes of each dataset (imagenet: ILSVRC-2012's; an image folder of another number names it, e.g.
# `apply --num-classes`)
DATASET_CLASSES = {FASHION_MNIST: 10, CIFAR10: 10, CIFAR100: 100, IMAGENET: 1000}

# whether an image-folder dataset is streamed from its files instead of decoded into memory
STREAM_AUTO = "auto"  # the default: streamed when the decoded images exceed the memory budget
STREAM_ALWAYS = "always"
STREAM_NEVER = "never"
STREAM_MODES = (STREAM_AUTO, STREAM_ALWAYS, STREAM_NEVER)

# what a training epoch does with a streamed image it cannot decode
BAD_IMAGES_FAIL = "fail"  # the default: the trial fails
BAD_IMAGES_SKIP = "skip"  # the image is skipped and counted in the trial's record
BAD_IMAGE_POLICIES = (BAD_IMAGES_FAIL, BAD_IMAGES_SKIP)
