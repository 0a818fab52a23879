"""Pure model definitions (no IO): the paper's DCGAN family, FastGAN-lite (the second generator
family) and the separable-conv classifier."""
