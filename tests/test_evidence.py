"""Metadata evidence readers: EXIF, PNG text chunks, XMP, the IPTC table, and hostile input.

Every fixture is written by Pillow into tmp_path and read back as bytes, as the scanner does.
"""

from __future__ import annotations

import io
import json
import random
import struct
import subprocess
import sys
import time
import zlib

import pytest
from PIL import Image, PngImagePlugin

from fakevlm_cli import evidence
from fakevlm_cli.evidence import exif, png, sourcetypes, xmp

A1111 = ("a castle on a hill, golden hour, highly detailed\nNegative prompt: blurry, lowres\n"
         "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x512, Model hash: 6ce0161689, "
         "Model: v1-5-pruned-emaonly, Version: v1.10.1")
XMP_HEAD = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
            'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
            'xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/" '
            'xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#" '
            'xmlns:exif="http://ns.adobe.com/exif/1.0/"')
XMP_TAIL = "</rdf:Description></rdf:RDF></x:xmpmeta>"


def _save(tmp_path, name, fmt, **params):
    path = tmp_path / name
    Image.new("RGB", (16, 16), (90, 120, 200)).save(path, fmt, **params)
    return path


def _collect(path, fmt):
    return evidence.collect(path, path.read_bytes(), fmt)


def _only(report, **match):
    found = [i for i in report.items if all(getattr(i, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, report.items, report.notes)
    return found[0]


def _xmp(attrs="", body=""):
    return (XMP_HEAD + attrs + ">" + body + XMP_TAIL).encode()


def _png(tmp_path, chunks, name="t.png", itxt=(), ztxt=()):
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    for key, value in itxt:
        info.add_itxt(key, value, zip=True)
    for key, value in ztxt:
        info.add_text(key, value, zip=True)
    return _save(tmp_path, name, "PNG", pnginfo=info)


# --- EXIF -------------------------------------------------------------------------------------------------

def test_camera_jpeg_exif(tmp_path):
    ex = Image.Exif()
    ex[0x010F], ex[0x0110], ex[0x0131] = "Canon", "Canon EOS R5", "Firmware Version 1.8.1"
    sub = ex.get_ifd(0x8769)
    sub[0x9003], sub[0xA434] = "2024:05:01 10:11:12", "RF24-105mm F4 L IS USM"
    sub[0x927C] = bytes(range(64))
    gps = ex.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (52.0, 22.0, 1.5), "E", (4.0, 53.0, 2.5)
    report = _collect(_save(tmp_path, "cam.jpg", "JPEG", exif=ex), "JPEG")
    assert report.exif == {"make": "Canon", "model": "Canon EOS R5", "lens_model": "RF24-105mm F4 L IS USM",
                           "datetime_original": "2024:05:01 10:11:12", "software": "Firmware Version 1.8.1",
                           "gps_present": True, "makernote_present": True}
    for key in ("Make", "Model", "LensModel", "DateTimeOriginal", "GPS", "MakerNote"):
        item = _only(report, key=key)
        assert (item.source, item.signal, item.strong) == ("exif", "camera", False)
    assert _only(report, key="Software").signal == "info"
    assert not any(i.signal.startswith("ai_") for i in report.items)
    assert report.notes == []


@pytest.mark.parametrize(("software", "signal", "generator"), [
    ("Adobe Firefly", "ai_generated", "Adobe Firefly"),
    ("midjourney v6", "ai_generated", "Midjourney"),
    ("DALL-E 3", "ai_generated", "DALL-E"),
    ("GIMP 2.10.36", "edited", None),
    ("Adobe Photoshop Lightroom Classic 13.0", "edited", None),
])
def test_exif_software_is_a_weak_hint(tmp_path, software, signal, generator):
    ex = Image.Exif()
    ex[0x0131] = software
    item = _only(_collect(_save(tmp_path, "s.jpg", "JPEG", exif=ex), "JPEG"), key="Software")
    assert (item.signal, item.strong, item.generator) == (signal, False, generator)


@pytest.mark.parametrize("codec", ["utf-16-be", "utf-16-le"])
@pytest.mark.parametrize("repeat", [1, 40])  # 40: over 1000 bytes, which exifread drops and we re-read
def test_a1111_user_comment_utf16(tmp_path, codec, repeat):
    ex = Image.Exif()
    ex.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + ("masterpiece, " * repeat + A1111).encode(codec)
    item = _only(_collect(_save(tmp_path, "a.jpg", "JPEG", exif=ex), "JPEG"), key="UserComment")
    assert (item.signal, item.strong, item.generator) == ("ai_generated", True, "Stable Diffusion (A1111)")
    assert "sampler=Euler a" in item.value and "steps=20" in item.value and "masterpiece" in item.value
    assert len(item.value) < 300


def test_decode_user_comment_headers():
    assert exif.decode_user_comment(b"ASCII\x00\x00\x00hello\x00") == "hello"
    assert exif.decode_user_comment(b"UNICODE\x00\xff\xfeh\x00i\x00") == "hi"
    assert exif.decode_user_comment(b"UNICODE\x00\xff\xfe\x00\xd8") == "\ufffd"  # lone surrogate: replaced, no raise
    assert exif.decode_user_comment(b"no header at all") == "no header at all"


def test_plain_user_comment_is_not_ai(tmp_path):
    ex = Image.Exif()
    ex.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00Holiday in Rome. Steps: 3 to the beach"
    report = _collect(_save(tmp_path, "c.jpg", "JPEG", exif=ex), "JPEG")
    assert not any(i.signal.startswith("ai_") for i in report.items)


def test_fooocus_jpeg_user_comment_and_makernote(tmp_path):
    ex = Image.Exif()  # Fooocus puts these three in IFD0; MakerNote holds its metadata scheme name
    ex[0x9286] = json.dumps({"prompt": "a red fox", "base_model": "juggernautXL_v8", "sampler": "dpmpp_2m_sde_gpu",
                             "steps": 30, "version": "Fooocus v2.5.5"})
    ex[0x0131], ex[0x927C] = "Fooocus v2.5.5", "fooocus"
    report = _collect(_save(tmp_path, "f.jpg", "JPEG", exif=ex), "JPEG")
    item = _only(report, key="UserComment")
    assert (item.generator, item.strong) == ("Fooocus", True) and "juggernautXL_v8" in item.value
    assert not any(i.key == "MakerNote" for i in report.items)  # not a camera maker note
    assert _only(report, key="Software").generator == "Fooocus"


def test_comfyui_webp_exif(tmp_path):
    prompt = {"3": {"class_type": "KSampler", "inputs": {"sampler_name": "euler", "steps": 25}},
              "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}},
              "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse in a storm"}}}
    ex = Image.Exif()  # what ComfyUI's WebP saver writes: Model = prompt, Make = workflow
    ex[0x0110] = "prompt:" + json.dumps(prompt)
    ex[0x010F] = "workflow:" + json.dumps({"nodes": [{"id": 1}, {"id": 2}]})
    report = _collect(_save(tmp_path, "c.webp", "WEBP", exif=ex), "WEBP")
    model, make = _only(report, key="Model"), _only(report, key="Make")
    assert {model.generator, make.generator} == {"ComfyUI"} and model.strong and make.strong
    assert "sdxl.safetensors" in model.value and "steps=25" in model.value and "2 nodes" in make.value
    assert "make" not in report.exif and not any(i.signal == "camera" for i in report.items)


def _jpeg_with_tiff(tiff: bytes) -> bytes:
    segment = b"Exif\x00\x00" + tiff
    return b"\xff\xd8\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + b"\xff\xda\x00\x02\xff\xd9"


def test_big_endian_exif_maker_note_and_comment():
    comment = b"UNICODE\x00" + A1111.encode("utf-16-be")
    note = b"Nikon\x00" + bytes(3000)
    entries = [(0x010F, 2, 6, b"NIKON\x00"), (0x9286, 7, len(comment), comment), (0x927C, 7, len(note), note)]
    offset, head, tail = 8 + 2 + 12 * len(entries) + 4, b"", b""
    for tag, kind, count, blob in entries:
        head += struct.pack(">HHII", tag, kind, count, offset + len(tail))
        tail += blob
    tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", len(entries)) + head + b"\x00" * 4 + tail
    report = evidence.collect(None, _jpeg_with_tiff(tiff), "JPEG")
    assert report.exif["make"] == "NIKON" and report.exif["makernote_present"] is True
    assert _only(report, key="MakerNote").value == f"present ({len(note)} bytes)"
    assert _only(report, key="UserComment").generator == "Stable Diffusion (A1111)"


def test_hostile_ifd_counts_are_bounded():
    entry = struct.pack("<HHII", 0x9286, 7, 0xFFFFFFFF, 0)  # 65535 entries declared, 4 GB UserComment
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 0xFFFF) + entry
    start = time.perf_counter()
    report = evidence.collect(None, _jpeg_with_tiff(tiff), "JPEG")
    assert time.perf_counter() - start < 1
    assert not any(i.signal.startswith("ai_") for i in report.items)


# --- PNG text chunks --------------------------------------------------------------------------------------

COMFY_PROMPT = json.dumps({"5": {"class_type": "CheckpointLoaderSimple",
                                 "inputs": {"ckpt_name": "flux1-dev.safetensors"}},
                           "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "portrait of an astronaut"}},
                           "9": {"class_type": "KSampler", "inputs": {"sampler_name": "euler", "steps": 28}}})


@pytest.mark.parametrize(("chunks", "key", "generator", "needle"), [
    ({"parameters": A1111}, "parameters", "Stable Diffusion (A1111)", "model=v1-5-pruned-emaonly"),
    ({"parameters": A1111.replace("v1.10.1", "f2.0.1v1.10.1-previous-519")}, "parameters",
     "Stable Diffusion (Forge)", "steps=20"),
    ({"parameters": "a cat\nSteps: 30, Sampler: DPM++ 2M, Version: Fooocus v2.5.5"}, "parameters", "Fooocus", "a cat"),
    ({"parameters": json.dumps({"sui_image_params": {"prompt": "a dog", "model": "OfficialStableDiffusion/sd_xl",
                                                     "steps": 20, "sampler": "euler"}})},
     "parameters", "StableSwarmUI", "sd_xl"),
    ({"parameters": json.dumps({"prompt": "a bird", "base_model": "juggernaut", "version": "Fooocus v2.4.0"}),
      "fooocus_scheme": "fooocus"}, "parameters", "Fooocus", "juggernaut"),
    ({"prompt": COMFY_PROMPT}, "prompt", "ComfyUI", "flux1-dev.safetensors"),
    ({"workflow": json.dumps({"nodes": [{"id": i} for i in range(7)], "links": []})}, "workflow", "ComfyUI",
     "7 nodes"),
    ({"invokeai_metadata": json.dumps({"positive_prompt": "a tree", "model": {"name": "juggernaut-xl"},
                                       "scheduler": "euler", "steps": 30})}, "invokeai_metadata", "InvokeAI",
     "juggernaut-xl"),
    ({"sd-metadata": json.dumps({"model_weights": "stable-diffusion-1.5",
                                 "image": {"prompt": [{"prompt": "a boat", "weight": 1}], "steps": 50,
                                           "sampler": "k_lms"}})}, "sd-metadata", "InvokeAI", "a boat"),
    ({"Dream": '"a boat at dawn" -s 50 -S 42 -W 512 -H 512 -C 7.5 -A k_lms'}, "Dream", "InvokeAI", "a boat"),
    ({"Title": "AI generated image", "Description": "a fox in snow", "Software": "NovelAI",
      "Source": "NovelAI Diffusion V4.5", "Comment": json.dumps({"prompt": "a fox in snow", "steps": 28,
                                                                  "sampler": "k_euler_ancestral", "uc": "bad"})},
     "Comment", "NovelAI", "NovelAI Diffusion V4.5"),
    ({"Description": "a koi pond, watercolor --ar 3:2 --v 6.1 Job ID: 0c9d2a4e-8f1b-4c1e-9a3b-5d6e7f8a9b0c",
      "Author": "someone"}, "Description", "Midjourney", "Job ID"),
    ({"prompt": "a mountain lake", "negative_prompt": "fog", "seed": "42",
      "use_stable_diffusion_model": "sd-v1-4", "num_inference_steps": "25"}, "prompt", "Easy Diffusion", "sd-v1-4"),
    ({"aesthetic_score": "6.0"}, "aesthetic_score", "Stable Diffusion", "6.0"),
])
def test_png_generators(tmp_path, chunks, key, generator, needle):
    report = _collect(_png(tmp_path, chunks), "PNG")
    item = _only(report, key=key, signal="ai_generated")
    assert (item.source, item.strong, item.generator) == ("png", True, generator)
    assert needle in item.value and len(item.value) <= 300
    assert report.notes == []


def test_png_compressed_chunks_and_long_prompt_cut(tmp_path):
    long = "a very long prompt " * 200 + "\nSteps: 20, Sampler: Euler"
    report = _collect(_png(tmp_path, {}, itxt=[("parameters", long)], ztxt=[("workflow", json.dumps({"nodes": []}))]),
                      "PNG")
    assert _only(report, key="parameters").generator == "Stable Diffusion (A1111)"
    assert len(_only(report, key="parameters").value) < 200
    assert _only(report, key="workflow").generator == "ComfyUI"


def test_png_plain_text_is_not_ai(tmp_path):
    report = _collect(_png(tmp_path, {"Comment": "holiday", "prompt": "not json", "Software": "GIMP 2.10"}), "PNG")
    assert not any(i.signal.startswith("ai_") for i in report.items)
    assert _only(report, key="Software").signal == "edited"


def test_png_xmp_is_read(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", _xmp(
        ' Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"'
    ).decode())
    item = _only(_collect(_save(tmp_path, "x.png", "PNG", pnginfo=info), "PNG"), key="DigitalSourceType")
    assert (item.source, item.signal, item.strong) == ("xmp", "ai_generated", True)


def _raw_png(*chunks):
    out = png.SIGNATURE
    for ctype, body in chunks:
        out += struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))
    return out


def test_png_bad_crc_and_truncation_still_read(tmp_path):
    ihdr = (b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    good = _raw_png(ihdr, (b"tEXt", b"parameters\x00" + A1111.encode()), (b"IDAT", b"x" * 40))
    crc_at = good.index(b"tEXt") + 4 + len(b"parameters\x00" + A1111.encode())
    bad_crc = good[:crc_at] + b"\x00\x00\x00\x00" + good[crc_at + 4:]
    report = evidence.collect(tmp_path / "x.png", bad_crc, "PNG")
    assert _only(report, key="parameters").strong
    assert any("bad CRC in a tEXt chunk" in n for n in report.notes)
    truncated = good[:-20]  # IDAT cut short, no IEND
    report = evidence.collect(tmp_path / "x.png", truncated, "PNG")
    assert _only(report, key="parameters").generator == "Stable Diffusion (A1111)"
    assert any("past the end of the file" in n for n in report.notes)


def test_png_text_after_idat_is_read():
    data = _raw_png((b"IDAT", b"x" * 10), (b"tEXt", b"parameters\x00" + A1111.encode()), (b"IEND", b""))
    assert _only(evidence.collect(None, data, "PNG"), key="parameters").strong


def test_png_hostile_lengths_and_ztxt_bomb():
    huge = png.SIGNATURE + struct.pack(">I", 0xFFFFFFF0) + b"tEXt" + b"parameters\x00x"
    report = evidence.collect(None, huge, "PNG")
    assert report.items == [] and any("past the end" in n for n in report.notes)
    bomb = _raw_png((b"zTXt", b"prompt\x00\x00" + zlib.compress(b"\x00" * (64 * 1024 * 1024), 9)), (b"IEND", b""))
    start = time.perf_counter()
    report = evidence.collect(None, bomb, "PNG")
    assert time.perf_counter() - start < 2 and report.items == []


# --- XMP --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("form", [
    ' Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"',
    ' Iptc4xmpExt:DigitalSourceType="https://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia/"',
    ('><Iptc4xmpExt:DigitalSourceType rdf:resource="https://cv.iptc.org/newscodes/digitalsourcetype/'
     'trainedAlgorithmicMedia"/'),
    ('><Iptc4xmpExt:DigitalSourceType> http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia '
     '</Iptc4xmpExt:DigitalSourceType'),
])
def test_xmp_digital_source_type_forms(tmp_path, form):
    attrs, _, body = form.partition(">")
    packet = _xmp(attrs, body + ">" if body else "")
    item = _only(_collect(_save(tmp_path, "x.jpg", "JPEG", xmp=packet), "JPEG"), key="DigitalSourceType")
    assert (item.source, item.signal, item.strong) == ("xmp", "ai_generated", True)
    assert item.value == "trainedAlgorithmicMedia (created by generative AI)"


def test_xmp_google_markers_tool_and_history(tmp_path):
    packet = _xmp(
        ' Iptc4xmpExt:DigitalSourceFileType="http://cv.iptc.org/newscodes/digitalsourcetype/'
        'compositeWithTrainedAlgorithmicMedia" photoshop:Credit="Made with Google AI"'
        ' xmp:CreatorTool="Adobe Photoshop 25.0"',
        '<xmpMM:History><rdf:Seq><rdf:li stEvt:action="created" stEvt:softwareAgent="Adobe Photoshop 25.0"/>'
        '<rdf:li rdf:parseType="Resource"><stEvt:action>saved</stEvt:action></rdf:li></rdf:Seq></xmpMM:History>')
    report = _collect(_save(tmp_path, "g.webp", "WEBP", xmp=packet), "WEBP")
    dsft = _only(report, key="DigitalSourceFileType")
    assert (dsft.signal, dsft.strong) == ("ai_edited", True)
    assert _only(report, key="Credit").generator == "Google AI" and _only(report, key="Credit").strong
    assert _only(report, key="CreatorTool").signal == "edited"
    history = _only(report, key="History")
    assert history.signal == "edited" and history.value.startswith("2 events (created, saved)")


def test_xmp_algorithmic_media_is_not_ai(tmp_path):
    packet = _xmp(' Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicMedia"')
    report = _collect(_save(tmp_path, "a.jpg", "JPEG", xmp=packet), "JPEG")
    assert _only(report, key="DigitalSourceType").signal == "info"


def test_xmp_draw_things_user_comment(tmp_path):
    comment = json.dumps({"c": "a snowy village", "model": "sd_xl_base_1.0_f16.ckpt", "sampler": "DPM++ 2M Karras",
                          "steps": 30, "seed": 7})
    packet = _xmp(' xmp:CreatorTool="Draw Things"',
                  f'<exif:UserComment><rdf:Alt><rdf:li xml:lang="x-default">{comment}</rdf:li></rdf:Alt>'
                  '</exif:UserComment>')
    report = _collect(_save(tmp_path, "d.png", "PNG", pnginfo=_itxt_xmp(packet)), "PNG")
    item = _only(report, key="UserComment")
    assert (item.generator, item.strong) == ("Draw Things", True) and "sd_xl_base" in item.value


def _itxt_xmp(packet):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", packet.decode())
    return info


BOMB = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10))
        + ']><x:xmpmeta xmlns:x="adobe:ns:meta/">&lol9;</x:xmpmeta>')


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_xmp_entity_bomb_is_refused(tmp_path, encoding):
    start = time.perf_counter()
    report = _collect(_save(tmp_path, "b.jpg", "JPEG", xmp=BOMB.encode(encoding)), "JPEG")
    assert time.perf_counter() - start < 1
    assert [i for i in report.items if i.source != "jpeg"] == []  # the JPEG's own structure is still read
    assert any(n.startswith("xmp: could not parse: DOCTYPE/ENTITY") for n in report.notes), report.notes


def test_xmp_deep_nesting_is_refused():
    packet = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">' + b"<a>" * 5000 + b"</a>" * 5000 + b"</x:xmpmeta>"
    report = evidence.collect(None, b"GIF89a" + packet, "GIF")
    assert any("nested too deep" in n for n in report.notes)


AI_SOURCE = ' Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"'


@pytest.mark.parametrize("doctype", [
    '<!DOCTYPE x:xmpmeta>',  # a DTD, even without entities
    '<!DOCTYPE x:xmpmeta SYSTEM "file:///etc/passwd">',  # an external DTD
    '<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',  # an external entity
    '<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1/x.dtd"> %p;]>',  # a parameter entity
])
def test_xmp_dtds_and_external_entities_are_refused(tmp_path, doctype):
    packet = doctype.encode() + _xmp(AI_SOURCE)
    report = _collect(_save(tmp_path, "d.jpg", "JPEG", xmp=packet), "JPEG")
    assert [i for i in report.items if i.source != "jpeg"] == []
    assert any(n.startswith("xmp: could not parse: DOCTYPE/ENTITY") for n in report.notes), report.notes


def test_xmp_declaration_text_inside_a_comment_or_cdata_is_not_a_declaration():
    # Before defusedxml a byte search refused any packet holding "<!DOCTYPE" or "<!ENTITY", even in a comment.
    packet = _xmp(AI_SOURCE, '<!-- <!DOCTYPE x [<!ENTITY a "b">]> --><rdf:li><![CDATA[<!ENTITY c "d">]]></rdf:li>')
    report = evidence.collect(None, b"GIF89a" + packet, "GIF")
    assert _only(report, key="DigitalSourceType").signal == "ai_generated"
    assert report.notes == []


def test_xmp_size_and_element_limits():
    many = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">' + b"<a/>" * (xmp.MAX_ELEMENTS + 1) + b"</x:xmpmeta>"
    report = evidence.collect(None, b"GIF89a" + many, "GIF")
    assert any("too many elements" in n for n in report.notes), report.notes
    huge = _xmp(AI_SOURCE, "<!--" + "x" * xmp.MAX_PACKET + "-->")
    report = evidence.collect(None, b"GIF89a" + huge, "GIF")
    assert report.items == [] and any("packet too large" in n for n in report.notes), report.notes


# --- IPTC vocabulary --------------------------------------------------------------------------------------

def test_every_source_type_is_mapped():
    expected = {"trainedAlgorithmicMedia": ("ai_generated", True),
                "compositeWithTrainedAlgorithmicMedia": ("ai_edited", True),
                "algorithmicMedia": ("info", False), "algorithmicallyEnhanced": ("edited", False)}
    for code in ("digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm", "print"):
        expected[code] = ("camera", False)
    for code in ("humanEdits", "compositeCapture", "minorHumanEdits"):
        expected[code] = ("edited", False)
    for code in ("screenCapture", "digitalCreation", "virtualRecording", "dataDrivenMedia", "compositeSynthetic",
                 "softwareImage", "digitalArt"):
        expected[code] = ("info", False)
    for code, (signal, strong) in expected.items():
        for uri in (f"http://cv.iptc.org/newscodes/digitalsourcetype/{code}",
                    f" HTTPS://cv.iptc.org/newscodes/digitalsourcetype/{code}/ ", code):
            assert sourcetypes.classify(uri)[:2] == (signal, strong), uri
    assert sourcetypes.classify("http://c2pa.org/digitalsourcetype/empty")[0] == "info"
    assert sourcetypes.classify("http://c2pa.org/digitalsourcetype/trainedAlgorithmicData")[:2] == ("ai_generated",
                                                                                                     False)
    assert sourcetypes.classify("http://example.com/newType") == ("info", False,
                                                                   "unknown source type http://example.com/newType")


# --- robustness -------------------------------------------------------------------------------------------

FORMATS = ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "HEIF", "AVIF", "MPO", "", "NONSENSE"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_garbage_and_empty_never_raise(fmt):
    rng = random.Random(fmt)
    blobs = [b"", b"\x00", bytes(rng.getrandbits(8) for _ in range(4096)),
             b"\xff\xd8\xff\xe1\xff\xff" + bytes(rng.getrandbits(8) for _ in range(300)),
             png.SIGNATURE + bytes(rng.getrandbits(8) for _ in range(300)),
             b"RIFF\xff\xff\xff\xffWEBPXMP \xff\xff\xff\x7f<x:xmpmeta", b"II*\x00\x08\x00\x00\x00\xff\xff"]
    for blob in blobs:
        report = evidence.collect(None, blob, fmt)
        assert report.items == [], (blob[:16], report.items)
        assert all(isinstance(n, str) and "\n" not in n for n in report.notes)


def test_failing_reader_becomes_a_note(tmp_path, monkeypatch):
    ex = Image.Exif()
    ex[0x010F] = "Sony"
    path = _save(tmp_path, "p.png", "PNG", exif=ex)

    def boom(data, report):
        raise RuntimeError("boom")

    monkeypatch.setattr(png, "read", boom)
    report = _collect(path, "PNG")
    assert "png: could not parse: RuntimeError: boom" in report.notes
    assert _only(report, key="Make").value == "Sony"  # the other readers still ran


def test_values_are_plain_strings(tmp_path):
    ex = Image.Exif()
    ex[0x010F] = "Caf\xe9 Cam"
    report = _collect(_save(tmp_path, "u.jpg", "JPEG", exif=ex), "JPEG")
    assert all(isinstance(i.value, str) for i in report.items)
    assert json.dumps([i.to_dict() for i in report.items])


def test_import_is_light():
    code = ("import sys, io, fakevlm_cli.evidence as e; from PIL import Image; b = io.BytesIO(); "
            "Image.new('RGB', (8, 8)).save(b, 'JPEG'); e.collect(None, b.getvalue(), 'JPEG'); "
            "bad = [m for m in ('torch', 'transformers', 'c2pa') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_collect_accepts_memoryview_like_input():
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG", pnginfo=_itxt_xmp(_xmp(' xmp:CreatorTool="GIMP 2.10"')))
    report = evidence.collect(None, bytearray(buf.getvalue()), "png")
    assert _only(report, key="CreatorTool").signal == "edited"
