"""Regenerate docs/gallery.png (Grad-CAM of the default model on the bundled photos, top-2 classes each) and
docs/methods.png (several methods on the cat photo), with the library's own labelled figures only."""

from pathlib import Path

import heatlens
from heatlens import display

HERE = Path(__file__).parent


def main() -> None:
    model = heatlens.load_model()
    results = []
    for name in ["cat", "coffee", "motorcycle"]:
        result = heatlens.explain(model, heatlens.samples.load(name), target="top2")
        result.names = [f"{name}.png"]
        results.append(result)
    print(display.save(display.figure(results), HERE / "gallery.png"))
    methods_sheet(model)


def methods_sheet(model: heatlens.models.Network) -> None:
    """Ten methods on the cat photo, the top class each: maps over the photo, pixel methods as attributions."""
    cat = heatlens.samples.load("cat")
    results = [heatlens.explain(model, cat, method=method, **options) for method, options in [
        ("gradcam", {}), ("gradcam_plusplus", {}), ("layercam", {"layer": "blocks.10"}), ("eigencam", {}),
        ("occlusion", {"window": 32, "stride": 16}), ("rise", {"n_masks": 1000}),
        ("lime", {"num_samples": 500, "segmentation": "slic"}), ("guided_backprop", {}),
        ("integrated_gradients", {"steps": 32}), ("smoothgrad", {"n_samples": 16})]]
    figure = display.figure(results, targets=[0], photo=False, columns=5,
                            title="efficientnet_lite0 on cat.png: the top class, ten ways")
    print(display.save(figure, HERE / "methods.png"))


if __name__ == "__main__":
    main()
