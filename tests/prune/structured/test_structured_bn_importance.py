"""The 'bn' importance ranks channels by |gamma| (Liu et al. 2017, network slimming)."""

import torch
from torch import nn

from secateurs.prune import structured


def test_bn_importance_ranks_by_absolute_scale():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 2),
    ).eval()
    gamma = torch.tensor([-5.0, 0.1, 3.0, -0.2, 0.3, -4.0])
    with torch.no_grad():
        model[1].weight.copy_(gamma)
    pruned, report = structured(model, torch.randn(2, 3, 8, 8), ratio=0.5, importance="bn")
    # largest |gamma|: channels 0, 2 and 5 (a signed ranking would keep 2, 4 and 1)
    torch.testing.assert_close(pruned[1].weight.detach(), gamma[[0, 2, 5]])
    assert report.method == "structured/bn"
