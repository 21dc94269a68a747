"""MINCLoss in plain PyTorch: an encoder, a predictor and an EMA target, no Lightning."""

import copy

import torch
from lightly.models.utils import update_momentum
from torch import nn

from minc_lightning import MINCLoss

encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 64))
predictor = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 64))
target = copy.deepcopy(encoder).requires_grad_(False)  # EMA copy, no gradient
criterion = MINCLoss(dim=64, alpha=0.1)  # Λ lives in criterion.second_moment
optimizer = torch.optim.SGD([*encoder.parameters(), *predictor.parameters()], lr=0.05, momentum=0.9)

for _ in range(100):
    x = torch.rand(128, 1, 28, 28)  # your images here
    v1, v2 = x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x)  # two augmented views
    p = predictor(encoder(torch.cat([v1, v2])))  # online predictions of v1 then v2
    with torch.no_grad():
        t = target(torch.cat([v2, v1]))  # target projections of the other view
    loss = criterion(p, t)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    update_momentum(encoder, target, m=0.99)  # once per optimizer step

print(f"loss {loss.item():.4f}, trace of Λ {criterion.second_moment.trace().item():.3f}")
