"""Experts: published detectors with real weights and training-free measurements.

Each expert module ports one published method from its paper (our own code, never the upstream
repository's) and gives, per window, tokens for the cross-modal detector and its own score, reported
as a named **cue** with the expert's name, weights hash and training domain. A cue that does not
apply (no face, no speech, no audio stream) is absent with its reason, never a 0.5.
"""
