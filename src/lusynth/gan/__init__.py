"""The GAN stages: ``train-gan`` (one GAN per class and training fraction, of the family
``gan.generator``: :mod:`.families`; :mod:`.train`) and
``generate`` (synthetic frames with a near-copy privacy filter, :mod:`.generate`).

Improvements over the paper's loop are switchable and were measured (``GanParams.diffaugment``,
``GanParams.ema_decay``; the ``paper`` profile turns both off; the fidelity each brings is in
``benchmarks/results/README.md``): DiffAugment keeps D from overfitting a hundred frames, the EMA
of G's weights smooths the fidelity curve. On the phantom, frame-level leave-one-out 1-NN
saturates at 1.0 even for real training frames against the validation frames (frames of one clip
are each other's nearest neighbours), which is why the selection rule (:mod:`.selection`) breaks
1-NN ties by MMD.
"""
