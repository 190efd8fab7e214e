"""The multi-output musicnn tagger's pieces: the tags selection and the heads' order in a manifest."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from genretag.models.artifact import HEAD_NAMES, ArtifactManifest, validate_manifest_dict


def test_heads_read_back_in_output_order_whatever_the_json_order() -> None:
    """write_manifest sorts keys (mood < speech < tags); a JSON object has no order: reading restores
    the outputs' order, which is HEAD_NAMES'."""
    heads = {
        "tags": {"labels": ["vocals"], "output": "sigmoid"},
        "mood": {"labels": ["happy", "tense", "sad", "calm"], "output": "softmax"},
        "speech": {"labels": ["music", "speech"], "output": "softmax"},
    }
    manifest = ArtifactManifest(
        kind="keras",
        architecture="musicnn",
        labels=["a", "b"],
        output="softmax",
        sample_rate=16000,
        window_seconds=2.976,
        hop_seconds=1.5,
        model_file="model.keras",
        files={"model.keras": "0" * 64},
        heads=heads,
    )
    assert list(validate_manifest_dict(asdict(manifest)).heads) == list(HEAD_NAMES)


def test_tag_selection_reads_the_named_taggram_outputs() -> None:
    from genretag.models.musicnn import tag_names
    from genretag.models.tagger import CURATED_TAGS, tag_selection

    variants, layers = ["MSD_musicnn", "MTT_musicnn"], ["penultimate", "taggram"]
    kernel = tag_selection(variants, layers, CURATED_TAGS)
    assert kernel.shape == (500, len(CURATED_TAGS)) and set(np.unique(kernel)) == {0.0, 1.0}
    assert (kernel.sum(axis=0) == 1).all()
    rows = kernel.argmax(axis=0)
    labels = list(CURATED_TAGS)
    # MSD: penultimate 0-199, taggram 200-249; MTT: penultimate 250-449, taggram 450-499
    assert rows[labels.index("vocals")] == 450 + tag_names("MTT_musicnn").index("vocal")
    assert rows[labels.index("instrumental")] == 200 + tag_names("MSD_musicnn").index("instrumental")
    with pytest.raises(ValueError, match="no taggram of MTT_musicnn"):
        tag_selection(variants, ["penultimate"], CURATED_TAGS)
    with pytest.raises(ValueError, match="has no tag 'kazoo'"):
        tag_selection(variants, layers, {"kazoo": ("MTT_musicnn", "kazoo")})
