"""The three-phase training curriculum: data, losses, the epoch loop, the phases.

Modules (data flows top to bottom)
----------------------------------
Data
    - :mod:`.archive_cache`: scan archives read once into pooled uint8 frames
      (the format, and reading it); :mod:`.archive_cache_build` builds it.
    - :mod:`.classify`: the regime (advection, multicell, supercell) of a real
      sequence, by rule.
    - :mod:`.windows`: training windows over the cache, their classes, and the
      train / validation / held-out-case split.
    - :mod:`.datasets`: torch datasets of archived windows and fresh simulated
      storms (with their flow priors).
    - :mod:`.augment`: flips, quarter turns and crops.
    - :mod:`.sampling`: class-balanced epochs, batches of one level count.
    - :mod:`.loaders`: from the settings and the command line to the loaders.
Training
    - :mod:`.losses`: Huber + weighted high-reflectivity term + 3D SSIM.
    - :mod:`.phases`: each phase's optimiser, schedule, loss weights and rules.
    - :mod:`.trainer`: one phase: the epoch loop, validation, checkpoints.
    - :mod:`.training`: one phase or all three in order (``nowcast train``).
    - :mod:`.distributed`: devices and data-parallel training (``torchrun``).
    - :mod:`.rng`: every random generator, captured and restored (exact resume).
Records
    - :mod:`.scores`: validation scores (loss terms, CSI 35 per lead, area ratio).
    - :mod:`.records`: what an epoch writes to the metrics store.
    - :mod:`.progress`: a rich bar on a terminal, a log event an epoch otherwise.
    - :mod:`.model_history`: a model's training runs, carried in its checkpoint.

The network itself and its checkpoint file are :mod:`nowcast.model`'s; the
forecasters and their priors (optical flow, storm tracks) are
:mod:`nowcast.forecasters`'; nothing below imports this package.
"""
