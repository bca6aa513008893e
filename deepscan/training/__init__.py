"""deepscan.training: data sets, pseudo-fakes, the training loop, evaluation and calibration.

- :mod:`~deepscan.training.data`: folder / manifest data sets split by source, cached window features,
  pseudo-fakes made from real media (``--real-only``);
- :mod:`~deepscan.training.pseudofakes`: the manipulations (AV offset, swapped audio, blended face,
  vocoded audio);
- :mod:`~deepscan.training.corpus`: the labelled synthetic corpus of ``deepscan synth``;
- :mod:`~deepscan.training.train`: AdamW training with early stopping, temperature calibration, saving;
- :mod:`~deepscan.training.evaluate`: AUC / EER / AP / accuracy / ECE overall and per kind, threshold fitting;
- :mod:`~deepscan.training.metrics`: the metrics, on scikit-learn.
"""
