"""The GAN stages: ``train-gan`` (one DCGAN per class and training fraction, :mod:`.train`) and
``generate`` (synthetic frames with a near-copy privacy filter, :mod:`.generate`).

Improvements over the paper's loop are switchable and were measured (``GanParams.diffaugment``,
``GanParams.ema_decay``; the ``paper`` profile turns both off). Setting: demo phantom store (24
patients x 2 clips x 8 frames, 64x64), class ``consolidation`` at fraction 1.0 (112 training,
48 validation frames), ngf = ndf = 16, lr 2e-4/2e-4, batch 16, 100 epochs (700 steps), seed 0,
one thread. Fidelity against the validation frames (MMD^2 RBF, median bandwidth; lower is better):

===============================  ==========  ==========  =========  ==================
variant                          MMD^2 px    MMD^2 emb   1-NN px/e  memorisation rate
===============================  ==========  ==========  =========  ==================
untrained G                      0.707       0.479       1.0 / 1.0  0.000
paper loop (no aug, no EMA)      0.318       0.652       1.0 / 1.0  0.000
+ EMA 0.99                       0.308       0.563       1.0 / 1.0  0.000
+ DiffAugment translation,cutout 0.158       0.176       1.0 / 1.0  0.021
+ both (demo default)            0.154       0.153       1.0 / 1.0  0.042
===============================  ==========  ==========  =========  ==================

DiffAugment is the large gain on a hundred frames (D stops overfitting; pixel MMD^2 halves,
embedding MMD^2 drops 3-4x); the EMA adds a little and smooths the curve. One seed, one class:
treat differences under ~0.02 as noise. Frame-level leave-one-out 1-NN saturates at 1.0 on the
phantom: even real training frames against the validation frames score 1.0 in both spaces,
because frames of one clip (and clips of one patient) are each other's nearest neighbours. That
is why the selection rule (:mod:`.selection`) breaks 1-NN ties by MMD.
"""
