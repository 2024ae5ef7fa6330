"""Loading: model files and named architectures into framework models, safely (no code runs from a file unless
trusted), and the preprocessing and classes that come with them."""
