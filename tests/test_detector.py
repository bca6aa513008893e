"""CrossModalDetector, its attention blocks and DetectorConfig."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch

from deepscan.model import (
    MODALITIES,
    CrossModalAttention,
    CrossModalDetector,
    DetectorConfig,
    FeatureStandardiser,
    SelfAttentionBlock,
    TimeEncoding,
)

SMALL = DetectorConfig(image_dim=24, audio_dim=40, video_dim=16, d_model=32, n_heads=4, ff_dim=32)
SUBSETS = [s for r in range(1, 4) for s in itertools.combinations(MODALITIES, r)]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run ~10x faster on one thread than on two contended cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_model(config: DetectorConfig = SMALL, seed: int = 0) -> CrossModalDetector:
    torch.manual_seed(seed)
    return CrossModalDetector(config).eval()


def make_inputs(config: DetectorConfig, batch: int = 3, lengths=(2, 5, 3), seed: int = 1) -> dict:
    """Token features and times for every modality, ``(B, T, D)`` / ``(B, T)``."""
    gen = torch.Generator().manual_seed(seed)
    inputs = {}
    for modality, length in zip(MODALITIES, lengths):
        dim = config.input_dims[modality]
        inputs[modality] = torch.randn(batch, length, dim, generator=gen)
        inputs[f"{modality}_times"] = torch.rand(batch, length, generator=gen) * 4.0
    return inputs


def assert_outputs_close(a, b, atol=1e-5):
    torch.testing.assert_close(a.logits, b.logits, atol=atol, rtol=0)
    for m in MODALITIES:
        torch.testing.assert_close(a.modality_logits[m], b.modality_logits[m], atol=atol, rtol=0)
        assert torch.equal(a.modality_present[m], b.modality_present[m])


# --- config -------------------------------------------------------------------------------------


def test_config_round_trips_through_json():
    config = DetectorConfig(d_model=64, n_heads=8, cross_pairs=(("video", "audio"),), modality_dropout=0.3)
    again = DetectorConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert again.cross_pairs == (("video", "audio"),)


def test_config_rejects_unknown_keys_and_bad_values():
    data = DetectorConfig().to_dict()
    with pytest.raises(ValueError, match="unknown detector config keys.*'n_experts'"):
        DetectorConfig.from_dict({**data, "n_experts": 4})
    with pytest.raises(ValueError, match="divisible by n_heads"):
        DetectorConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="cross_pairs"):
        DetectorConfig(cross_pairs=(("image", "text"),))
    with pytest.raises(ValueError, match="modality_dropout"):
        DetectorConfig(modality_dropout=1.0)
    with pytest.raises(ValueError, match="invalid detector config"):
        DetectorConfig.from_dict({**data, "dropout": "high"})


# --- seed compatibility ----------------------------------------------------------------------------


def test_default_model_takes_seed_inputs_and_is_small():
    model = make_model(DetectorConfig())
    assert 1_000_000 <= model.num_parameters() <= 3_500_000
    out = model(image=torch.randn(4, 512), audio=torch.randn(4, 768), video=torch.randn(4, 512))
    assert out.logits.shape == (4, 2) and out.logits.dtype == torch.float32
    assert torch.isfinite(out.logits).all()
    assert set(out.modality_logits) == set(MODALITIES)
    assert all(out.modality_present[m].all() for m in MODALITIES)


def test_two_d_inputs_equal_one_token_sequences():
    model = make_model()
    gen = torch.Generator().manual_seed(3)
    flat = {m: torch.randn(3, SMALL.input_dims[m], generator=gen) for m in MODALITIES}
    a = model(**flat)
    b = model(**{m: x[:, None, :] for m, x in flat.items()})
    assert_outputs_close(a, b, atol=0)


# --- masking ---------------------------------------------------------------------------------------


def test_padding_tokens_do_not_change_outputs():
    model = make_model()
    inputs = make_inputs(SMALL)
    # Ragged lengths: sample 0 keeps fewer real tokens than the others.
    masks = {m: torch.ones(inputs[m].shape[:2], dtype=torch.bool) for m in MODALITIES}
    masks["audio"][0, 3:] = False
    masks["image"][1, 1:] = False
    reference = model(**inputs, **{f"{m}_mask": masks[m] for m in MODALITIES})

    padded, padded_masks = dict(inputs), {}
    for m in MODALITIES:
        batch, n, dim = inputs[m].shape
        garbage = torch.randn(batch, 4, dim) * 100
        padded[m] = torch.cat([inputs[m], garbage], dim=1)
        padded[f"{m}_times"] = torch.cat([inputs[f"{m}_times"], torch.rand(batch, 4) * 1e3], dim=1)
        padded_masks[f"{m}_mask"] = torch.cat([masks[m], torch.zeros(batch, 4, dtype=torch.bool)], dim=1)
    assert_outputs_close(reference, model(**padded, **padded_masks))


def test_garbage_in_masked_positions_changes_nothing_but_real_tokens_do():
    model = make_model()
    inputs = make_inputs(SMALL)
    mask = torch.ones(inputs["audio"].shape[:2], dtype=torch.bool)
    mask[:, -1] = False
    reference = model(**inputs, audio_mask=mask)
    changed = dict(inputs, audio=inputs["audio"].clone())
    changed["audio"][:, -1] += torch.randn(3, 40) * 50.0
    assert_outputs_close(reference, model(**changed, audio_mask=mask))
    changed["audio"][:, 0] += torch.randn(3, 40) * 5.0  # a real token: the output must move
    assert not torch.allclose(reference.logits, model(**changed, audio_mask=mask).logits, atol=1e-4)


@pytest.mark.parametrize("missing", MODALITIES)
def test_fully_masked_modality_equals_none(missing):
    model = make_model()
    inputs = make_inputs(SMALL)
    mask = torch.zeros(inputs[missing].shape[:2], dtype=torch.bool)
    masked = model(**inputs, **{f"{missing}_mask": mask})
    without = dict(inputs)
    del without[missing], without[f"{missing}_times"]
    assert_outputs_close(masked, model(**without))
    assert not masked.modality_present[missing].any()
    assert torch.equal(masked.modality_logits[missing], torch.zeros(3, 2))


def test_per_sample_missing_modality_equals_scoring_that_sample_alone():
    model = make_model()
    inputs = make_inputs(SMALL)
    mask = torch.ones(inputs["video"].shape[:2], dtype=torch.bool)
    mask[1] = False  # sample 1 has no video
    batch = model(**inputs, video_mask=mask)
    alone = {k: v[1:2] for k, v in inputs.items() if not k.startswith("video")}
    single = model(**alone)
    torch.testing.assert_close(batch.logits[1:2], single.logits, atol=1e-5, rtol=0)
    assert batch.modality_present["video"].tolist() == [True, False, True]


@pytest.mark.parametrize("subset", SUBSETS, ids=["+".join(s) for s in SUBSETS])
def test_every_subset_of_modalities_gives_finite_outputs_and_gradients(subset):
    model = make_model(DetectorConfig(**{**SMALL.to_dict(), "dropout": 0.1})).train()
    inputs = make_inputs(SMALL)
    given = {k: v for k, v in inputs.items() if k.split("_")[0] in subset}
    out = model(**given)
    assert torch.isfinite(out.logits).all()
    for m in MODALITIES:
        assert out.modality_present[m].tolist() == [m in subset] * 3
        assert torch.isfinite(out.modality_logits[m]).all()
    loss = out.logits.logsumexp(dim=1).sum() + sum(v.sum() for v in out.modality_logits.values())
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_no_modality_is_a_clear_error():
    model = make_model()
    with pytest.raises(ValueError, match="at least one of image, audio or video"):
        model()
    inputs = make_inputs(SMALL)
    masks = {f"{m}_mask": torch.zeros(inputs[m].shape[:2], dtype=torch.bool) for m in MODALITIES}
    masks["audio_mask"][0] = True
    with pytest.raises(ValueError, match=r"samples \[1, 2\] have no real token"):
        model(**inputs, **masks)


def test_bad_inputs_raise_specific_errors():
    model = make_model()
    inputs = make_inputs(SMALL)
    with pytest.raises(ValueError, match=r"audio features must have shape \(B, 40\)"):
        model(audio=torch.randn(2, 5, 41))
    with pytest.raises(ValueError, match="batch size"):
        model(image=torch.randn(2, 24), audio=torch.randn(3, 40))
    with pytest.raises(TypeError, match="bool"):
        model(image=inputs["image"], image_mask=torch.ones(3, 2))
    with pytest.raises(ValueError, match="image_mask must have shape"):
        model(image=inputs["image"], image_mask=torch.ones(3, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="without video features"):
        model(image=inputs["image"], video_times=torch.zeros(3, 2))
    with pytest.raises(TypeError, match="floating point"):
        model(image=torch.ones(3, 24, dtype=torch.long))


# --- time encoding ---------------------------------------------------------------------------------


def test_time_encoding_is_sinusoidal_and_times_matter():
    encoding = TimeEncoding(32, max_time_s=8.0, min_period_s=0.04)
    values = encoding(torch.tensor([[0.0, 0.02, 3.0]]))
    assert values.shape == (1, 3, 32)
    torch.testing.assert_close(values[0, 0], torch.cat([torch.zeros(16), torch.ones(16)]))
    # The fastest channel has a period of 0.04 s: half a period later, sin is 0 and cos is -1.
    torch.testing.assert_close(values[0, 1, [0, 16]], torch.tensor([0.0, -1.0]), atol=1e-5, rtol=0)
    assert values.abs().max() <= 1.0
    model = make_model()
    inputs = make_inputs(SMALL)
    shifted = dict(inputs, audio_times=inputs["audio_times"].flip(1))
    assert not torch.allclose(model(**inputs).logits, model(**shifted).logits, atol=1e-5)


# --- attention blocks ------------------------------------------------------------------------------


def test_cross_attention_passes_query_through_when_keys_are_missing():
    torch.manual_seed(0)
    block = CrossModalAttention(16, 4, dropout=0.0, ff_dim=32)
    query = torch.randn(2, 3, 16, requires_grad=True)
    context = torch.randn(2, 5, 16)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1] = False
    out = block(query, context, mask)
    assert torch.equal(out[1], query[1])
    assert not torch.allclose(out[0], query[0])
    out.sum().backward()
    assert torch.isfinite(query.grad).all()


def test_self_attention_block_ignores_padding():
    torch.manual_seed(0)
    block = SelfAttentionBlock(16, 2, dropout=0.0).eval()
    x = torch.randn(1, 4, 16)
    mask = torch.tensor([[True, True, False, False]])
    out = block(x, mask)
    torch.testing.assert_close(out[:, :2], block(x[:, :2], mask[:, :2]), atol=1e-6, rtol=0)
    assert torch.equal(block(x, torch.zeros(1, 4, dtype=torch.bool)), x)


# --- training behaviour ----------------------------------------------------------------------------


def test_modality_dropout_never_drops_everything_and_is_off_in_eval():
    config = DetectorConfig(**{**SMALL.to_dict(), "modality_dropout": 0.7})
    model = make_model(config).train()
    inputs = make_inputs(config, batch=64, lengths=(2, 3, 2))
    out = model(**inputs)
    present = torch.stack([out.modality_present[m] for m in MODALITIES], dim=1)
    assert present.any(dim=1).all()
    assert (~present).any()  # some modality of some sample was dropped
    assert torch.isfinite(out.logits).all()
    # Samples that have only one modality keep it.
    only_audio = model(audio=inputs["audio"])
    assert only_audio.modality_present["audio"].all()
    model.eval()
    a, b = model(**inputs), model(**inputs)
    assert all(a.modality_present[m].all() for m in MODALITIES)
    assert torch.equal(a.logits, b.logits)


def test_bf16_autocast_and_inference_mode():
    model = make_model(DetectorConfig())
    inputs = make_inputs(DetectorConfig(), lengths=(8, 50, 2))
    reference = model(**inputs).logits
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**inputs, video_mask=torch.ones(3, 2, dtype=torch.bool))
    assert out.logits.dtype == torch.float32
    assert torch.isfinite(out.logits).all()
    torch.testing.assert_close(out.logits, reference, atol=0.1, rtol=0.1)


def test_detector_learns_a_separable_task():
    """A few Adam steps separate 'fake' audio (tokens shifted along one direction) from real."""
    config = DetectorConfig(**{**SMALL.to_dict(), "modality_dropout": 0.2})
    model = make_model(config).train()
    labels = torch.arange(32) % 2
    direction = torch.randn(40, generator=torch.Generator().manual_seed(5))

    def data(seed):
        inputs = make_inputs(config, batch=32, lengths=(2, 4, 2), seed=seed)
        inputs["audio"] = inputs["audio"] + labels[:, None, None] * direction
        return inputs

    train = data(1)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(25):
        out = model(**train)
        loss = torch.nn.functional.cross_entropy(out.logits, labels)
        loss = loss + torch.nn.functional.cross_entropy(out.modality_logits["audio"], labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    out = model.eval()(**data(9))
    assert (out.logits.argmax(1) == labels).float().mean() >= 0.9
    assert (out.modality_logits["audio"].argmax(1) == labels).float().mean() >= 0.9


def test_sync_correlation_peaks_at_the_audio_offset():
    # a mouth signal in image dim 0 and the same signal 0.5 s later in audio dim 0: with projections
    # that pick those dims, the correlation over the lag search must peak at +0.5 s
    from deepscan.model.sync import SyncCorrelation

    sync = SyncCorrelation(4, 6, channels=1, max_lag_s=1.0, lag_step_s=0.125, kernel_s=0.08)
    with torch.no_grad():
        sync.image_proj.weight.zero_()
        sync.image_proj.weight[0, 0] = 1.0
        sync.audio_proj.weight.zero_()
        sync.audio_proj.weight[0, 0] = 1.0
    rng = np.random.default_rng(0)
    frame_t = torch.arange(32) / 8.0
    audio_t = torch.arange(50) * 0.08 + 0.04
    image = torch.zeros(1, 32, 4)
    audio = torch.zeros(1, 50, 6)
    signal = np.interp(np.arange(0, 6, 0.01), np.arange(0, 6, 0.125), np.random.default_rng(1).standard_normal(48))
    image[0, :, 0] = torch.tensor(np.interp(frame_t.numpy(), np.arange(0, 6, 0.01), signal), dtype=torch.float32)
    audio[0, :, 0] = torch.tensor(np.interp(audio_t.numpy() - 0.5, np.arange(0, 6, 0.01), signal), dtype=torch.float32)
    image[0, :, 1:] = torch.tensor(rng.normal(size=(32, 3)), dtype=torch.float32)  # LayerNorm needs spread
    audio[0, :, 1:] = torch.tensor(rng.normal(size=(50, 5)), dtype=torch.float32)
    ones_i, ones_a = torch.ones(1, 32, dtype=torch.bool), torch.ones(1, 50, dtype=torch.bool)
    features, present = sync(image, ones_i, frame_t[None], audio, ones_a, audio_t[None])
    assert features.shape == (1, sync.out_dim) and bool(present[0])
    assert float(sync.lags[features[0].argmax()]) == pytest.approx(0.5)
    assert features[0].max() > 0.5 and features[0, sync.lags.numel() // 2] < features[0].max() - 0.2
    # no audio: no sync features, and the flag says so
    features, present = sync(image, ones_i, frame_t[None], audio, torch.zeros(1, 50, dtype=torch.bool), audio_t[None])
    assert not bool(present[0]) and torch.all(features == 0)


def test_sync_channels_default_off_and_roundtrip():
    from deepscan.model import DetectorConfig

    assert DetectorConfig().sync_channels == 0 and CrossModalDetector(DetectorConfig()).sync is None
    config = DetectorConfig(d_model=16, n_heads=2, ff_dim=16, sync_channels=2)
    assert DetectorConfig.from_dict(config.to_dict()) == config
    model = CrossModalDetector(config).eval()
    out = model(torch.randn(2, 8, 512), torch.randn(2, 12, 768), image_times=torch.arange(8.0).expand(2, 8) / 8,
                audio_times=(torch.arange(12.0) * 0.08).expand(2, 12))
    assert out.logits.shape == (2, 2) and torch.isfinite(out.logits).all()
    with pytest.raises(ValueError, match="sync_channels"):
        DetectorConfig(sync_channels=-1)


def test_feature_standardiser_fits_scale_and_offset_and_is_identity_until_fitted():
    std = FeatureStandardiser(4)
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
    x = x * torch.tensor([1e-2, 1.0, 10.0, 300.0]) + torch.tensor([5.0, -2.0, 0.0, 1e3])
    assert torch.equal(std(x), x)
    std.fit(x)
    z = std(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(4), atol=1e-4, rtol=0)  # float32 of x ~ 5 +- 0.01
    torch.testing.assert_close(z.std(0), torch.ones(4), atol=1e-4, rtol=0)
    assert std(x.to(torch.bfloat16)).dtype == torch.bfloat16
    constant = torch.ones(10, 4)
    std.fit(constant)
    assert torch.isfinite(std(constant)).all() and std.std.min().item() == pytest.approx(FeatureStandardiser.MIN_STD)
    with pytest.raises(ValueError, match=r"\(N >= 2, 4\)"):
        std.fit(torch.ones(1, 4))
    with pytest.raises(ValueError, match="got \\(10, 3\\)"):
        std.fit(torch.ones(10, 3))


def test_standardised_detector_is_invariant_to_per_dimension_affine_changes_of_its_features():
    # what the standardiser is for: an encoder's per-dimension offsets and scales stop mattering
    config = dataclasses.replace(SMALL, standardise_inputs=True)
    inputs = make_inputs(config)
    gen = torch.Generator().manual_seed(2)
    scale = {m: torch.rand(config.input_dims[m], generator=gen) * 50 + 0.1 for m in MODALITIES}
    shift = {m: torch.randn(config.input_dims[m], generator=gen) * 100 for m in MODALITIES}
    changed = {**inputs, **{m: inputs[m] * scale[m] + shift[m] for m in MODALITIES}}
    a, b = make_model(config), make_model(config)
    for m in MODALITIES:
        a.standardisers[m].fit(inputs[m].flatten(0, 1))
        b.standardisers[m].fit(changed[m].flatten(0, 1))
    with torch.inference_mode():
        assert_outputs_close(a(**inputs), b(**changed), atol=1e-3)
        assert not torch.allclose(make_model(SMALL)(**inputs).logits, make_model(SMALL)(**changed).logits, atol=1e-3)
    assert make_model(SMALL).standardisers is None
