"""Provenance expert: C2PA credentials, IPTC source type, generator metadata, invisible watermarks.

Every file is made here, in ``tmp_path``: manifests are signed with a throwaway test CA generated
by ``cryptography`` (C2PA tests skip when ``c2pa-python`` or ``cryptography`` is missing), text
chunks, EXIF and XMP are written with Pillow and PyAV, watermarks with our own encoder.
"""

from __future__ import annotations

import datetime
import io
import json
import struct
import wave
import zlib

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from deepscan.experts import provenance as prov
from deepscan.experts import provenance_marks as marks
from deepscan.experts import watermark as wm

AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
COMPOSITE_AI = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"


# ------------------------------------------------------------------------------------ helpers


def _picture(h=512, w=512, seed=0) -> np.ndarray:
    """uint8 (h, w, 3): smooth colour gradients plus noise, a stand-in for a photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 80 * np.sin(xx / 40.0), 128 + 60 * np.cos(yy / 30.0),
                    128 + 50 * np.sin((xx + yy) / 50.0)], -1) + rng.normal(0, 8, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _save(path, rgb, fmt, **kw):
    Image.fromarray(rgb).save(path, fmt, **kw)
    return path


def _png_chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def _png_with_late_chunks(path, rgb, chunks):
    """A PNG whose extra chunks sit after IDAT (Pillow only shows those once the image is loaded)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    data = buf.getvalue()
    iend = data.rindex(b"IEND") - 4
    path.write_bytes(data[:iend] + b"".join(_png_chunk(t, d) for t, d in chunks) + data[iend:])
    return path


def _xmp(body: str) -> str:
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
            f'xmlns:xmp="http://ns.adobe.com/xap/1.0/" {body}</rdf:Description></rdf:RDF></x:xmpmeta>')


def _read(path, **kw):
    kw.setdefault("watermark", False)
    return prov.read_provenance(path, **kw)


# ----------------------------------------------------------------------------------- C2PA


@pytest.fixture(scope="module")
def test_ca():
    """A throwaway root CA and an ES256 leaf (EKU emailProtection), as C2PA signers use."""
    pytest.importorskip("c2pa")
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "deepscan tests")])

    def usage(ca):
        return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                             encipher_only=False, decipher_only=False)

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    days = datetime.timedelta(days=1)
    root = (x509.CertificateBuilder().subject_name(name("deepscan Test Root")).issuer_name(name("deepscan Test Root"))
            .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - days).not_valid_after(now + 30 * days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage(True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("Test Signer")).issuer_name(root.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - days).not_valid_after(now + 30 * days)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM).decode()  # noqa: E731
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return {"root": pem(root), "chain": pem(leaf) + pem(root), "key": key_pem}


def _manifest(source_type=None, action="c2pa.created", agent="ImageGen X"):
    act = {"action": action, "softwareAgent": {"name": agent}}
    if source_type:
        act["digitalSourceType"] = source_type
    return {"claim_generator_info": [{"name": "deepscan-test-generator", "version": "1.0"}], "title": "asset",
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [act]}}]}


def _sign(ca, source: bytes, mime: str, manifest: dict, ingredient: tuple | None = None) -> bytes:
    import c2pa

    ctx = c2pa.Context.from_dict({"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
                                  "builder": {"thumbnail": {"enabled": False}}})
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, ca["chain"].encode(),
                                                       ca["key"].encode(), None))
    builder = c2pa.Builder(manifest, context=ctx)
    if ingredient is not None:
        title, data, ing_mime = ingredient
        builder.add_ingredient({"title": title, "relationship": "parentOf", "label": "parent"}, ing_mime,
                               io.BytesIO(data))
    out = io.BytesIO()
    builder.sign(signer, mime, io.BytesIO(source), out)
    return out.getvalue()


def _jpeg_bytes(rgb) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_c2pa_ai_declaration_by_an_untrusted_signer_is_a_fake(tmp_path, test_ca):
    path = tmp_path / "ai.jpg"
    path.write_bytes(_sign(test_ca, _jpeg_bytes(_picture(64, 64)), "image/jpeg", _manifest(AI)))
    p = _read(path)
    assert p.c2pa is not None and p.c2pa.validation_state == "valid"
    assert p.c2pa.digital_source_types == ("trainedAlgorithmicMedia",)
    assert p.c2pa.signer == "Test Signer" and p.c2pa.claim_generator == "deepscan-test-generator 1.0"
    p_fake, reason = prov.cue(p)
    assert p_fake == prov.P_DECLARED_AI
    assert reason == ("C2PA: created by ImageGen X, trainedAlgorithmicMedia, signed by Test Signer "
                      "(not on the trust list)")
    assert prov.prov_column(p) == "AI c2pa"


def test_c2pa_trusted_when_the_signer_chains_to_a_given_anchor(tmp_path, test_ca):
    path = tmp_path / "ai.jpg"
    path.write_bytes(_sign(test_ca, _jpeg_bytes(_picture(64, 64)), "image/jpeg", _manifest(COMPOSITE_AI)))
    p = _read(path, trust_pem=test_ca["root"])
    assert p.c2pa.validation_state == "trusted"
    p_fake, reason = prov.cue(p)
    assert p_fake == prov.P_DECLARED_AI
    assert "compositeWithTrainedAlgorithmicMedia" in reason and "(on the trust list)" in reason


def test_c2pa_trust_env_var_adds_anchors(tmp_path, test_ca, monkeypatch):
    path = tmp_path / "ai.jpg"
    path.write_bytes(_sign(test_ca, _jpeg_bytes(_picture(64, 64)), "image/jpeg", _manifest(AI)))
    anchors = tmp_path / "anchors.pem"
    anchors.write_text("# my newsroom's CA\n" + test_ca["root"])
    monkeypatch.setenv(prov.TRUST_ENV, f"{tmp_path / 'missing.pem'}{__import__('os').pathsep}{anchors}")
    p = _read(path)
    assert p.c2pa.validation_state == "trusted"
    assert any("missing.pem" in r and "unreadable" in r for r in p.reasons)
    monkeypatch.delenv(prov.TRUST_ENV)
    assert _read(path).c2pa.validation_state == "valid"


def test_shipped_trust_list_is_real_pem_that_c2pa_accepts(tmp_path, test_ca):
    pem, reasons = prov.trust_anchors()
    assert reasons == []
    assert pem.count("-----BEGIN CERTIFICATE-----") >= 10  # the C2PA Trust List, not a placeholder
    path = tmp_path / "ai.jpg"
    path.write_bytes(_sign(test_ca, _jpeg_bytes(_picture(64, 64)), "image/jpeg", _manifest(AI)))
    p = _read(path)
    assert p.c2pa.validation_state == "valid"  # our test root is not on it
    assert not any("trust list" in r for r in p.reasons)


def test_c2pa_trusted_capture_says_captured_by_and_claims_no_authenticity(tmp_path, test_ca):
    path = tmp_path / "photo.jpg"
    path.write_bytes(_sign(test_ca, _jpeg_bytes(_picture(64, 64)), "image/jpeg",
                           _manifest(CAPTURE, agent="Test Camera M1")))
    trusted = _read(path, trust_pem=test_ca["root"])
    p_fake, reason = prov.cue(trusted)
    assert p_fake is None
    assert reason.startswith("C2PA: captured by Test Camera M1 (digitalCapture), "
                             "signed by Test Signer (on the trust list)")
    assert "not that the scene is real" in reason and "authentic" not in reason
    assert prov.prov_column(trusted) == "capture"
    untrusted = _read(path)
    p_fake, reason = prov.cue(untrusted)
    assert p_fake is None and "unverified" in reason and "not on the trust list" in reason
    assert prov.prov_column(untrusted) == "c2pa"


def test_c2pa_manifest_tampered_after_signing_is_invalid_and_no_evidence(tmp_path, test_ca):
    signed = bytearray(_sign(test_ca, _jpeg_bytes(_picture(64, 64)), "image/jpeg", _manifest(AI)))
    for i in range(len(signed) - 300, len(signed) - 100):  # entropy-coded pixels, after the manifest
        signed[i] ^= 0x01
    path = tmp_path / "tampered.jpg"
    path.write_bytes(bytes(signed))
    p = _read(path, trust_pem=test_ca["root"])
    assert p.c2pa.validation_state == "invalid"
    assert "assertion.dataHash.mismatch" in p.c2pa.validation_failures
    p_fake, reason = prov.cue(p)
    assert p_fake is None  # the AI claim of an invalid manifest is not proof
    assert reason.startswith("C2PA manifest invalid (assertion.dataHash.mismatch)")
    assert prov.prov_column(p) == "c2pa!"


def test_c2pa_ingredient_declaring_ai_makes_the_composite_a_fake(tmp_path, test_ca):
    parent = _sign(test_ca, _jpeg_bytes(_picture(64, 64, seed=1)), "image/jpeg", _manifest(AI))
    manifest = {"claim_generator_info": [{"name": "deepscan-test-editor", "version": "2"}], "title": "edit.jpg",
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}},
                    {"action": "c2pa.edited"}]}}]}
    path = tmp_path / "edit.jpg"
    path.write_bytes(_sign(test_ca, _jpeg_bytes(_picture(64, 64, seed=2)), "image/jpeg", manifest,
                           ingredient=("ai.jpg", parent, "image/jpeg")))
    p = _read(path)
    assert p.c2pa.ai_terms == ()
    assert p.c2pa.ingredients[0].title == "ai.jpg"
    assert p.c2pa.ingredients[0].digital_source_types == ("trainedAlgorithmicMedia",)
    p_fake, reason = prov.cue(p)
    assert p_fake == prov.P_DECLARED_AI
    assert reason.startswith("C2PA: ingredient 'ai.jpg' declared trainedAlgorithmicMedia")


def test_c2pa_manifest_without_source_type_is_reported_not_scored(tmp_path, test_ca):
    path = tmp_path / "edit.jpg"
    empty = "http://c2pa.org/digitalsourcetype/empty"  # what c2pa-rs writes when the origin is not stated
    path.write_bytes(_sign(test_ca, _jpeg_bytes(_picture(64, 64)), "image/jpeg", _manifest(empty)))
    p = _read(path)
    assert p.c2pa.digital_source_types == ()
    p_fake, reason = prov.cue(p)
    assert p_fake is None
    assert reason == ("C2PA: manifest by deepscan-test-generator 1.0, signed by Test Signer (not on the trust list),"
                      " no AI declared")


def test_c2pa_on_audio(tmp_path, test_ca):
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((np.sin(np.arange(8000) / 5) * 3000).astype("<i2").tobytes())
    path = tmp_path / "voice.wav"
    path.write_bytes(_sign(test_ca, buf.getvalue(), "audio/wav", _manifest(AI, agent="VoiceGen 2")))
    p = _read(path)
    assert p.container == "av"
    p_fake, reason = prov.cue(p)
    assert p_fake == prov.P_DECLARED_AI and "created by VoiceGen 2" in reason


def test_manifest_strings_from_the_file_cannot_forge_lines():
    store = {"active_manifest": "m", "validation_state": "Valid", "manifests": {"m": {
        "claim_generator": "Gen\nfake,row\r\x1b[31m", "signature_info": {"common_name": "Evil\nSigner"},
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
            {"action": "c2pa.created", "digitalSourceType": AI, "softwareAgent": {"name": "A\n<b>x</b>"}},
            "not an action"]}}],
        "ingredients": [{"title": "t\u2028x", "active_manifest": "missing"}, "junk"]}}}
    m = prov._parse_store(store)
    reason = prov.cue(prov.Provenance("x", c2pa=m))[1]
    assert "\n" not in reason and "\r" not in reason and "\x1b" not in reason
    assert reason.startswith("C2PA: created by A <b>x</b>, trainedAlgorithmicMedia, signed by Evil Signer")
    assert all("\n" not in line and "\u2028" not in line for line in prov.describe(prov.Provenance("x", c2pa=m)))
    assert m.ingredients[0].title == "t x"
    assert prov._parse_store({"active_manifest": "m", "manifests": {"m": []}}) is None


# ------------------------------------------------------------------------------------ IPTC / XMP


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_iptc_source_type_in_xmp_declares_ai(tmp_path, fmt):
    rgb = _picture(64, 64)
    if fmt == "jpeg":  # attribute form, JPEG APP1
        path = _save(tmp_path / "a.jpg", rgb, "JPEG", xmp=_xmp(f'Iptc4xmpExt:DigitalSourceType="{AI}">').encode())
    elif fmt == "png":  # element form, PNG iTXt XML:com.adobe.xmp
        info = PngInfo()
        element = f"<Iptc4xmpExt:DigitalSourceType>{AI}</Iptc4xmpExt:DigitalSourceType>"
        info.add_itxt("XML:com.adobe.xmp", _xmp(">" + element))
        path = _save(tmp_path / "a.png", rgb, "PNG", pnginfo=info)
    else:  # rdf:resource form, WebP XMP chunk
        path = _save(tmp_path / "a.webp", rgb, "WEBP",
                     xmp=_xmp(f'><Iptc4xmpExt:DigitalSourceType rdf:resource="{AI}"/>').encode())
    p = _read(path)
    assert p.container == fmt
    assert p.iptc_source_type is not None and p.iptc_source_type.term == "trainedAlgorithmicMedia"
    p_fake, reason = prov.cue(p)
    assert p_fake == prov.P_DECLARED_AI
    assert reason.startswith("XMP: IPTC digital source type trainedAlgorithmicMedia") and "unsigned" in reason
    assert prov.prov_column(p) == "AI xmp"


def test_iptc_capture_claim_in_xmp_is_a_fact_not_evidence(tmp_path):
    path = _save(tmp_path / "a.jpg", _picture(64, 64), "JPEG",
                 xmp=_xmp(f'Iptc4xmpExt:DigitalSourceType="{CAPTURE}">').encode())
    p = _read(path)
    assert p.iptc_source_type.term == "digitalCapture"
    assert prov.cue(p) == (None, "XMP: IPTC digital source type digitalCapture (unsigned, no evidence)")


# ------------------------------------------------------------------------ generator metadata

A1111 = ("a portrait of a man\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, "
         "Size: 512x512, Model hash: abcdef1234, Model: v1-5-pruned-emaonly")
COMFY_PROMPT = json.dumps({"3": {"class_type": "KSampler", "inputs": {"seed": 1}}})
COMFY_WORKFLOW = json.dumps({"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": []})


@pytest.mark.parametrize("chunks, marker", [
    ([("parameters", A1111)], "a1111-parameters"),
    ([("prompt", COMFY_PROMPT)], "comfyui-prompt"),
    ([("workflow", COMFY_WORKFLOW)], "comfyui-workflow"),
    ([("invokeai_metadata", json.dumps({"app_version": "3.0.2", "generation_mode": "txt2img"}))], "invokeai-metadata"),
    ([("sd-metadata", json.dumps({"model": "stable diffusion"}))], "invokeai-sd-metadata"),
    ([("Dream", '"a cat" -s 50 -S 42 -W 512 -H 512 -C 7.5 -A k_lms')], "invokeai-dream"),
    ([("Software", "NovelAI"), ("Comment", json.dumps({"steps": 28, "sampler": "k_euler", "uc": "lowres"}))],
     "novelai-software"),
    ([("fooocus_scheme", "fooocus"), ("parameters", json.dumps({"prompt": "x"}))], "fooocus-scheme"),
])
@pytest.mark.parametrize("late", [False, True], ids=["before-IDAT", "after-IDAT"])
def test_png_text_chunks_of_each_generator_family(tmp_path, chunks, marker, late):
    rgb = _picture(32, 32)
    if late:
        path = _png_with_late_chunks(tmp_path / "g.png", rgb,
                                     [(b"tEXt", k.encode("latin-1") + b"\0" + v.encode("latin-1")) for k, v in chunks])
    else:
        info = PngInfo()
        for k, v in chunks:
            info.add_text(k, v, zip=len(v) > 40)  # long values as zTXt
        path = _save(tmp_path / "g.png", rgb, "PNG", pnginfo=info)
    p = _read(path)
    found = {g.marker: g for g in p.generator_marks}
    assert marker in found
    g = found[marker]
    assert g.generator and g.documented_at.startswith("https://")
    p_fake, reason = prov.cue(p)
    assert p_fake == prov.P_DECLARED_AI and reason.startswith("metadata: ")
    assert prov.prov_column(p) == "AI meta"


def test_a1111_infotext_in_jpeg_exif_usercomment(tmp_path):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + A1111.encode("utf-16-be")
    path = _save(tmp_path / "a.jpg", _picture(32, 32), "JPEG", exif=exif.tobytes())
    p = _read(path)
    assert [g.marker for g in p.generator_marks] == ["a1111-parameters"]
    assert p.generator_marks[0].where == "EXIF UserComment (JPEG APP1)"


def test_comfyui_webp_exif_and_artbot_software(tmp_path):
    exif = Image.Exif()
    exif[0x0110] = "prompt:" + COMFY_PROMPT
    path = _save(tmp_path / "c.webp", _picture(32, 32), "WEBP", exif=exif.tobytes())
    assert [g.marker for g in _read(path).generator_marks] == ["comfyui-webp-exif"]
    exif = Image.Exif()
    exif[0x0131] = "ArtBot - Create images with Stable Diffusion, utilizing the AI Horde"
    path = _save(tmp_path / "b.jpg", _picture(32, 32), "JPEG", exif=exif.tobytes())
    p = _read(path)
    assert {g.marker for g in p.generator_marks} == {"artbot-software", "generator-name"}
    assert [s.role for s in p.software] == ["generator"]


def test_generator_named_in_xmp_creator_tool(tmp_path):
    path = _save(tmp_path / "d.jpg", _picture(32, 32), "JPEG",
                 xmp=_xmp('xmp:CreatorTool="Made with OpenAI Labs (DALL-E 2)">').encode())
    p = _read(path)
    assert [(g.marker, g.field) for g in p.generator_marks] == [("generator-name", "xmp:creatortool")]
    assert prov.cue(p)[0] == prov.P_DECLARED_AI


def test_comfyui_tags_in_an_audio_file(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "song.flac"
    with av.open(str(path), "w") as c:
        stream = c.add_stream("flac", rate=16000)
        stream.layout = "mono"
        c.metadata["prompt"] = COMFY_PROMPT
        c.metadata["workflow"] = COMFY_WORKFLOW
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            c.mux(packet)
    p = _read(path)
    assert p.container == "av"
    assert {g.marker for g in p.generator_marks} >= {"comfyui-prompt", "comfyui-workflow"}
    assert prov.cue(p)[0] == prov.P_DECLARED_AI


# ------------------------------------------------------------------------------------ controls


def test_camera_exif_only_is_no_evidence(tmp_path):
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0131] = "Canon", "Canon EOS 5D Mark II", "Firmware Version 2.1.2"
    p = _read(_save(tmp_path / "cam.jpg", _picture(64, 64), "JPEG", exif=exif.tobytes()))
    assert p.generator_marks == () and p.c2pa is None and p.iptc_source_type is None
    assert {(s.field, s.role) for s in p.software} == {("exif:make", "camera"), ("exif:model", "camera"),
                                                      ("exif:software", "other")}
    assert prov.cue(p) == (None, "no provenance marks")
    assert prov.prov_column(p) == "-"


@pytest.mark.parametrize("software", ["Adobe Photoshop CC 2017 (Macintosh)", "GIMP 2.10.34"])
def test_an_editors_software_tag_is_no_evidence(tmp_path, software):
    exif = Image.Exif()
    exif[0x0131] = software
    jpg = _read(_save(tmp_path / "e.jpg", _picture(64, 64), "JPEG", exif=exif.tobytes()))
    info = PngInfo()
    info.add_text("Software", software)
    png = _read(_save(tmp_path / "e.png", _picture(64, 64), "PNG", pnginfo=info))
    for p in (jpg, png):
        assert p.generator_marks == ()
        assert [s.role for s in p.software] == ["editor"]
        p_fake, reason = prov.cue(p)
        assert p_fake is None and reason.startswith("no provenance marks (edited with ")


def test_generator_field_names_with_other_content_are_no_evidence(tmp_path):
    info = PngInfo()
    info.add_text("parameters", "exposure +0.3, contrast 10")  # not an A1111 infotext
    info.add_text("prompt", "a caption someone wrote")  # not a ComfyUI graph
    info.add_text("Comment", json.dumps({"steps": 28}))  # NovelAI's Comment, but no Software "NovelAI"
    p = _read(_save(tmp_path / "x.png", _picture(32, 32), "PNG", pnginfo=info))
    assert p.generator_marks == ()
    assert prov.cue(p)[0] is None


# ----------------------------------------------------------------------------------- watermark


def test_haar_dwt_is_orthonormal_and_invertible():
    x = np.random.default_rng(0).normal(size=(8, 12))
    ll, details = wm.haar_dwt2(x)
    assert np.allclose(ll[0, 0], x[:2, :2].sum() / 2)
    assert np.allclose(wm.haar_idwt2(ll, details), x)
    assert np.isclose(sum((b ** 2).sum() for b in (ll, *details)), (x ** 2).sum())  # energy kept
    with pytest.raises(ValueError):
        wm.haar_dwt2(np.zeros((3, 4)))


def test_scheme_messages_and_false_match_rates():
    by_name = {s.name: s for s in wm.SCHEMES}
    assert bytes(np.packbits(by_name["StableDiffusionV1"].bits)) == b"StableDiffusionV1"
    assert by_name["StableDiffusionV1"].n_bits == 136 and by_name["SDXL"].n_bits == 48
    assert int("".join(map(str, by_name["SDXL"].bits)), 2) == 0xB3EC907BB19E
    assert wm.binomial_tail(4, 1) == 5 / 16
    assert by_name["StableDiffusionV1"].false_match_rate < 1e-11
    assert by_name["SDXL"].false_match_rate == pytest.approx(4 * wm.binomial_tail(48, 6))
    assert all(s.false_match_rate < 1e-6 for s in wm.SCHEMES)


@pytest.mark.parametrize("scheme, convention", [("StableDiffusionV1", "bgr-uint8"),
                                                ("SDXL", "rgb-as-bgr-float"), ("SDV2", "bgr-uint8")])
def test_watermark_embedded_then_found(tmp_path, scheme, convention):
    s = next(x for x in wm.SCHEMES if x.name == scheme)
    c = next(x for x in wm.CONVENTIONS if x.name == convention)
    marked = wm.embed(_picture(512, 512, seed=3), s.bits, c)
    path = _save(tmp_path / "m.png", marked, "PNG")
    p = prov.read_provenance(path)
    assert p.watermark is not None and p.watermark.scheme == scheme
    assert p.watermark.n_bits - p.watermark.bits_matched <= s.max_errors
    assert p.watermark.false_match_rate == s.false_match_rate
    p_fake, reason = prov.cue(p)
    assert p_fake == prov.P_DECLARED_AI and reason.startswith(f"watermark: {scheme} of ")
    assert prov.prov_column(p) == "AI wm"
    again = prov.read_provenance(path, rgb=marked)  # the scanner's decoded frame, no second decode
    assert again.watermark == p.watermark


def test_unmarked_images_do_not_match():
    rng = np.random.default_rng(7)
    for seed in range(3):
        assert wm.detect(_picture(512, 640, seed=seed))[0] is None
        assert wm.detect(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8))[0] is None
    assert wm.detect(np.full((512, 512, 3), 128, np.uint8))[0] is None  # flat: all-zero bits


def test_small_images_are_not_decoded(tmp_path):
    with pytest.raises(ValueError):
        wm.embed(_picture(128, 128), wm.SCHEMES[0].bits)
    match, note = wm.detect(_picture(200, 300))
    assert match is None and note == "not decoded: 300x200 is under 65536 pixels (256x256)"
    p = prov.read_provenance(_save(tmp_path / "s.png", _picture(200, 300), "PNG"))
    assert "watermark not decoded: 300x200 is under 65536 pixels (256x256)" in p.reasons
    odd = prov.read_provenance(tmp_path / "s.png", rgb=np.zeros(7, np.uint8))  # a caller's bad frame
    assert odd.watermark is None and any(r.startswith("watermark not decoded: expected") for r in odd.reasons)


# ---------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("make", ["empty", "truncated-png", "junk-jpeg", "random", "directory", "missing"])
def test_bad_input_never_raises(tmp_path, make):
    path = tmp_path / "bad.png"
    if make == "empty":
        path.write_bytes(b"")
    elif make == "truncated-png":
        buf = io.BytesIO()
        Image.fromarray(_picture(300, 300)).save(buf, "PNG")
        path.write_bytes(buf.getvalue()[:2000])
    elif make == "junk-jpeg":
        path.write_bytes(b"\xff\xd8\xff\xe1\xff\xffExif\0\0garbage" * 50)
    elif make == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif make == "directory":
        path.mkdir()
    p = prov.read_provenance(path)
    p_fake, reason = prov.cue(p)
    assert p_fake is None and reason
    json.dumps(p.as_dict())
    if make in ("directory", "missing", "truncated-png", "junk-jpeg"):
        assert p.reasons


def test_facts_are_json_ready_and_describe_lists_them(tmp_path):
    info = PngInfo()
    info.add_text("parameters", A1111)
    info.add_text("Software", "GIMP 2.10")
    p = _read(_save(tmp_path / "g.png", _picture(32, 32), "PNG", pnginfo=info))
    d = json.loads(json.dumps(p.as_dict()))
    assert d["generator_marks"][0]["marker"] == "a1111-parameters"
    lines = prov.describe(p)
    assert any(line.startswith("generator metadata: AUTOMATIC1111") for line in lines)
    assert "png:software: GIMP 2.10 (editor, no evidence)" in lines


def test_marker_table_is_complete():
    names = [m.name for m in marks.MARKERS]
    assert len(names) == len(set(names))
    for m in marks.MARKERS:
        assert m.generator and m.fields
        assert m.documented_at is None or m.documented_at.startswith("https://")
    assert marks.AI_SOURCE_TYPES <= set(marks.IPTC_SOURCE_TYPES)
