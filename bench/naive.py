"""The naive reference pipeline, written the way the anchor repositories do it.

OpenCV decodes every frame of a video into memory; every ``fps / VISUAL_FPS``-th frame is kept;
a Haar cascade looks for a face in the full-resolution frame; each crop goes through CLIP alone
(one fp32 call per frame, no batching); wav2vec2 runs in fp32 over the whole audio track at once.
No worker processes, no cache. It is what deepscan is compared with in ``python -m bench``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from deepscan.media import VISUAL_FPS, load_waveform, probe

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)  # CLIP preprocessing (RGB)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
CROP = 224


def _clip_input(rgb: np.ndarray) -> torch.Tensor:
    x = cv2.resize(rgb, (CROP, CROP), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
    return torch.from_numpy(((x - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1)[None])


def _face_crop(cascade, rgb: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    faces = cascade.detectMultiScale(gray, 1.1, 5, minSize=(48, 48))
    if len(faces) == 0:
        return rgb
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    return rgb[y:y + h, x:x + w]


class NaivePipeline:
    """Per-file, unbatched fp32 CLIP + wav2vec2, OpenCV decoding of every frame.

    Parameters
    ----------
    image_model : transformers.CLIPVisionModelWithProjection
    audio_model : transformers.Wav2Vec2Model
    """

    def __init__(self, image_model, audio_model):
        self.image_model = image_model.float().eval()
        self.audio_model = audio_model.float().eval()
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    @torch.no_grad()
    def embed_file(self, path: str) -> dict:
        """Mean CLIP embedding ``(512,)`` and mean wav2vec2 state ``(768,)`` of one file (``None`` if absent)."""
        info = probe(path)
        out = {"image": None, "audio": None}
        frames = []
        if info.kind == "image":
            frames = [cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)]
        elif info.kind == "video":
            capture = cv2.VideoCapture(path)
            every = max(1, round((capture.get(cv2.CAP_PROP_FPS) or 30) / VISUAL_FPS))
            decoded = []
            while True:  # the whole video in memory, as the anchors do
                ok, frame = capture.read()
                if not ok:
                    break
                decoded.append(frame)
            capture.release()
            frames = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in decoded[::every]]
        if frames:
            embeds = [self.image_model(pixel_values=_clip_input(_face_crop(self.cascade, f))).image_embeds
                      for f in frames]
            out["image"] = torch.cat(embeds).mean(0)
        if info.has_audio:
            wave = torch.from_numpy(load_waveform(path))[None]
            wave = (wave - wave.mean()) / (wave.std() + 1e-7)
            out["audio"] = self.audio_model(wave).last_hidden_state[0].mean(0)
        return out
