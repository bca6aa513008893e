"""deepscan.training: data sets, pseudo-fakes, the training loop, evaluation and calibration.

- :mod:`~deepscan.training.data`: folder / manifest data sets split by source, cached window features,
  pseudo-fakes made from real media (``--real-only``);
- :mod:`~deepscan.training.pseudofakes`: the manipulations (AV offset, swapped audio, blended face,
  vocoded audio);
- :mod:`~deepscan.training.corpus`: the labelled synthetic corpus of ``deepscan synth``;
- :mod:`~deepscan.training.train`: AdamW training with early stopping, temperature calibration, saving;
- :func:`~deepscan.training.train.evaluate_samples`: AUC / EER / AP / accuracy / ECE of a detector, overall and per kind;
- the metrics are :mod:`deepscan.metrics` (below training); evaluating a checkpoint and fitting its
  threshold is :mod:`deepscan.evaluation.detector` (above it).
"""
