"""A seeded synthetic task with known answers: the class is the colour of a square at a random place.

Every image also holds a grey distractor square, so a map that merely finds 'a square' fails. The same
small CNN (three convs, global average pooling, a linear layer) can be trained in torch or in Keras.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SIZE = 32
SIDE = 8
COLOURS = np.array([[1.0, 0.1, 0.1], [0.1, 1.0, 0.1], [0.1, 0.1, 1.0]], dtype=np.float32)
STEPS, BATCH = 300, 32


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


def held_out_accuracy(predict: Any, seed: int) -> float:
    images, labels, _ = make_images(200, seed=seed + 2)
    return float((predict(images).argmax(1) == labels).mean())


def train_torch(seed: int = 0) -> tuple[Any, float]:
    """The small CNN in torch, trained on fresh synthetic batches (seconds on a CPU); held-out accuracy."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, len(COLOURS)),
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    images, labels, _ = make_images(STEPS * BATCH, seed=seed + 1)
    x, y = torch.from_numpy(images.transpose(0, 3, 1, 2)), torch.from_numpy(labels)
    for step in range(STEPS):
        batch = slice(step * BATCH, (step + 1) * BATCH)
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval().zero_grad(set_to_none=True)

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(batch.transpose(0, 3, 1, 2))).numpy()

    return model, held_out_accuracy(predict, seed)


def train_keras(seed: int = 0) -> tuple[Any, float]:
    """The same small CNN in Keras, trained with model.fit on the same synthetic task."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="last_conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(len(COLOURS))(x))
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images, labels, _ = make_images(STEPS * BATCH, seed=seed + 1)
    model.fit(images, labels, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    return model, held_out_accuracy(lambda batch: model.predict(batch, verbose=0), seed)
