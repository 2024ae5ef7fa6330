"""The top-3 classes of a Keras VGG16, with one Grad-CAM map per class, in a few lines.

    python examples/keras_vgg16_top3.py --weights vgg16_weights_tf_dim_ordering_tf_kernels.h5

Without a weights file it runs offline on the Keras build of the bundled EfficientNet-Lite0.
"""

import argparse

import heatlens

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--weights", help="keras.applications VGG16 weights (.h5)")
parser.add_argument("--image", help="a photo; default: the bundled coffee")
parser.add_argument("--out", default="vgg16-top3")
args = parser.parse_args()

if args.weights:
    model = heatlens.load_model("keras:VGG16", weights=args.weights)  # default layer: block5_conv3
else:
    model = heatlens.load_model("efficientnet_lite0", framework="keras")
photo = args.image or heatlens.samples.path("coffee")

result = heatlens.explain(model, photo, target="top3")
for rank, (name, prob) in enumerate(zip(result.targets.names[0], result.targets.probabilities[0], strict=True), 1):
    print(f"{rank}. {name} ({prob:.1%})")
print("written:", result.save(args.out))
