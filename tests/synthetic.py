"""A seeded synthetic task with known answers: the class is the colour of a square at a random place.

Every image also holds a grey distractor square, so a map that merely finds 'a square' fails.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SIZE = 32
SIDE = 8
COLOURS = np.array([[1.0, 0.1, 0.1], [0.1, 1.0, 0.1], [0.1, 0.1, 1.0]], dtype=np.float32)


def make_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images (n, 32, 32, 3) float32, labels (n,), object boxes (n, 4) as top, left, bottom, right."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 0.3, (n, SIZE, SIZE, 3)).astype(np.float32)
    labels = rng.integers(0, len(COLOURS), n)
    boxes = np.zeros((n, 4), dtype=int)
    for i in range(n):
        (oy, ox), (dy, dx) = _two_apart(rng)
        images[i, oy : oy + SIDE, ox : ox + SIDE] = COLOURS[labels[i]]
        images[i, dy : dy + SIDE, dx : dx + SIDE] = 0.6
        boxes[i] = (oy, ox, oy + SIDE, ox + SIDE)
    return images, labels, boxes


def _two_apart(rng: np.random.Generator) -> tuple[tuple[int, int], tuple[int, int]]:
    while True:
        a, b = rng.integers(0, SIZE - SIDE + 1, (2, 2))
        if abs(a[0] - b[0]) >= SIDE or abs(a[1] - b[1]) >= SIDE:
            return (int(a[0]), int(a[1])), (int(b[0]), int(b[1]))


class SmallCNN(nn.Module):
    """Three conv layers, global average pooling, a linear classifier; `features.5` is the last ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        )
        self.fc = nn.Linear(32, len(COLOURS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


def train(steps: int = 300, seed: int = 0) -> tuple[SmallCNN, float]:
    """Train SmallCNN on fresh synthetic batches (a few seconds on a CPU); returns it and held-out accuracy."""
    torch.manual_seed(seed)
    model = SmallCNN()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    images, labels, _ = make_images(steps * 32, seed=seed + 1)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2))
    y = torch.from_numpy(labels)
    for step in range(steps):
        batch = slice(step * 32, (step + 1) * 32)
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    test_images, test_labels, _ = make_images(200, seed=seed + 2)
    model.eval()
    with torch.no_grad():
        predicted = model(torch.from_numpy(test_images.transpose(0, 3, 1, 2))).argmax(1).numpy()
    model.zero_grad(set_to_none=True)
    return model, float((predicted == test_labels).mean())
