"""Pure model definitions (no IO): the paper's DCGAN family and the separable-conv classifier."""
