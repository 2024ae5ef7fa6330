"""Grad-CAM on a Keras classifier with the heatmap superimposed on the photo, in a few lines.

The classic Keras workflow (a sub-model to the last conv layer, a GradientTape, a jet heatmap pasted
over the photo) as heatlens does it. With the Xception weights file from keras.applications:

    python examples/keras_xception_gradcam.py --weights xception_weights_tf_dim_ordering_tf_kernels.h5

Without a weights file it runs offline on the Keras build of the bundled EfficientNet-Lite0.
"""

import argparse

import heatlens

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--weights", help="keras.applications Xception weights (.h5)")
parser.add_argument("--image", help="a photo; default: the bundled cat")
parser.add_argument("--out", default="xception-gradcam")
args = parser.parse_args()

if args.weights:
    model = heatlens.load_model("keras:Xception", weights=args.weights)
else:
    model = heatlens.load_model("efficientnet_lite0", framework="keras")
photo = args.image or heatlens.samples.path("cat")

result = heatlens.explain(model, photo)  # top-1 class, default layer (block14_sepconv2_act for Xception)
name, prob = result.targets.names[0][0], result.targets.probabilities[0][0]
print(f"{model.name}: {name} ({prob:.1%}), Grad-CAM at layer {result.layer}")
print("written:", result.save(args.out, alpha=0.4, cmap="jet"))
