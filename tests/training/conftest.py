"""Training tests run tiny problems: more torch threads only add contention on a 2-core machine."""

import torch

torch.set_num_threads(1)
