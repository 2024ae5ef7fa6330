"""Regenerate docs/gallery.png (Grad-CAM of the default model on the bundled photos, top-2 classes each) and
docs/methods.png (several methods on the cat photo)."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import heatlens

TILE = 256


def tile(image: np.ndarray, caption: str) -> Image.Image:
    picture = Image.fromarray(image)
    picture.thumbnail((TILE, TILE))
    canvas = Image.new("RGB", (TILE, picture.height + 18), "white")
    canvas.paste(picture, ((TILE - picture.width) // 2, 0))
    ImageDraw.Draw(canvas).text((4, picture.height + 3), caption, fill="black")
    return canvas


def main() -> None:
    model = heatlens.load_model()
    rows = []
    for name in ["cat", "coffee", "motorcycle"]:
        result = heatlens.explain(model, heatlens.samples.load(name), target="top2")
        overlays = result.overlay()[0]
        tiles = [tile(result.images[0], f"{name}.png")]
        tiles += [tile(o, f"{n} ({p:.0%})") for o, n, p in
                  zip(overlays, result.targets.names[0], result.targets.probabilities[0], strict=True)]
        rows.append(tiles)
    heights = [max(t.height for t in tiles) for tiles in rows]
    sheet = Image.new("RGB", (TILE * 3, sum(heights)), "white")
    for r, tiles in enumerate(rows):
        for c, t in enumerate(tiles):
            sheet.paste(t, (c * TILE, sum(heights[:r])))
    out = Path(__file__).with_name("gallery.png")
    sheet.save(out, optimize=True)
    print(out)
    methods_sheet(model)


def methods_sheet(model: heatlens.models.Network) -> None:
    """One row per method family on the cat photo: CAMs as overlays, pixel methods as attribution images."""
    cat = heatlens.samples.load("cat")
    tiles = []
    for method, options in [("gradcam", {}), ("gradcam_plusplus", {}), ("layercam", {"layer": "blocks.10"}),
                            ("eigencam", {}), ("occlusion", {"window": 32, "stride": 16}),
                            ("rise", {"n_masks": 1000}), ("lime", {"num_samples": 500, "segmentation": "slic"}),
                            ("guided_backprop", {}), ("integrated_gradients", {"steps": 32}),
                            ("smoothgrad", {"n_samples": 16})]:
        result = heatlens.explain(model, cat, method=method, **options)
        shown = result.attribution_images("seed")[0, 0] if result.attributions is not None else result.overlay()[0, 0]
        tiles.append(tile(shown, method))
    heights = max(t.height for t in tiles)
    sheet = Image.new("RGB", (TILE * 5, heights * 2), "white")
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % 5) * TILE, (i // 5) * heights))
    out = Path(__file__).with_name("methods.png")
    sheet.save(out, optimize=True)
    print(out)


if __name__ == "__main__":
    main()
