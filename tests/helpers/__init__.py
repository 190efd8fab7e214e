"""Helpers shared by the test folders, imported as ``helpers.<module>`` (``tests`` is on pytest's pythonpath).

* :mod:`helpers.daemon`: fast artifacts, the daemon as a subprocess, a PCM producer, promtool;
* :mod:`helpers.recording_sink`: a source sink that records what a source reports;
* :mod:`helpers.predictors`: a predictor that scores every window alike, for the tagger's bookkeeping;
* :mod:`helpers.bad_inputs`: the bad-input corpus of the fault tests;
* :mod:`helpers.audio_corpus`: small generated corpora for the dataset builder and reader tests;
* :mod:`helpers.level_artifact`: a transparent Keras artifact (loud or quiet by level).
"""
