"""Wav headers in the corpus preparations: a truncated file (shorter than its header says)
is found by mmer_lobes.audio.wav_data_size, warned about by name, and read as what it holds."""
import logging
import os
import struct

import numpy as np
import pytest
import soundfile

from data_prep.prepare_common import read_wav_header


def write_wav(path, n_samples=16000, rate=16000, channels=1, subtype="PCM_16"):
    data = np.random.RandomState(0).randn(n_samples, channels).astype(np.float32) * 0.1
    soundfile.write(path, data, rate, subtype=subtype)
    return path


def cut(path, n_bytes):
    """Cuts the last ``n_bytes`` off ``path``, as an interrupted copy or download does."""
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) - n_bytes)
    return path


def test_wav_data_size_reports_declared_and_present_sizes(tmp_path):
    from mmer_lobes.audio import wav_data_size

    path = write_wav(str(tmp_path / "a.wav"))
    intact = wav_data_size(path)
    assert not intact.truncated and intact.declared_samples == intact.present_samples == 16000
    cut(path, 1001)  # 500 samples and half of one more
    size = wav_data_size(path)
    assert size.truncated
    assert (size.declared_bytes, size.present_bytes, size.frame_bytes) == (32000, 30999, 2)
    assert (size.declared_samples, size.present_samples) == (16000, 15499)
    assert soundfile.info(path).frames == 15499  # what soundfile reads, without a word
    assert size.describe(path) == (
        f"truncated wav file {path}: its header declares 16000 samples, the file holds 15499")
    # float and stereo wavs carry more chunks (fact, PEAK) before the data
    stereo = cut(write_wav(str(tmp_path / "s.wav"), 8000, 8000, 2, "FLOAT"), 800)
    size = wav_data_size(stereo)
    assert (size.declared_samples, size.present_samples, size.frame_bytes) == (8000, 7900, 8)


def test_wav_data_size_without_a_size_to_compare(tmp_path):
    from mmer_lobes.audio import wav_data_size

    flac = str(tmp_path / "a.flac")
    soundfile.write(flac, np.zeros(1000, dtype=np.float32), 16000)
    assert wav_data_size(flac) is None  # not a wav
    header_cut = cut(write_wav(str(tmp_path / "h.wav")), 32044 - 30)
    assert wav_data_size(header_cut) is None  # no data chunk: soundfile refuses it (below)
    streamed = write_wav(str(tmp_path / "streamed.wav"))
    data = bytearray(open(streamed, "rb").read())
    # what writers to a pipe put where the size goes: no size to compare, no false alarm
    for placeholder in (0xFFFFFFFF, 0x7FFFF000, 0):
        data[40:44] = struct.pack("<I", placeholder)
        open(streamed, "wb").write(bytes(data))
        assert wav_data_size(streamed) is None, hex(placeholder)


@pytest.mark.parametrize("container, subtype, frame_bytes", [("RF64", "PCM_16", 2), ("WAVEX", "PCM_24", 6)])
def test_wav_data_size_of_rf64_and_extensible_wavs(tmp_path, container, subtype, frame_bytes):
    """RF64 gives the data size in a ds64 chunk; WAVE_FORMAT_EXTENSIBLE wraps PCM."""
    from mmer_lobes.audio import wav_data_size

    channels = frame_bytes // 3 if subtype == "PCM_24" else 1
    path = str(tmp_path / "a.wav")
    data = np.random.RandomState(0).randn(4000, channels).astype(np.float32) * 0.1
    soundfile.write(path, data, 16000, subtype=subtype, format=container)
    assert open(path, "rb").read(4) == (b"RF64" if container == "RF64" else b"RIFF")
    assert wav_data_size(path) == (4000 * frame_bytes, 4000 * frame_bytes, frame_bytes)
    cut(path, 10 * frame_bytes)
    size = wav_data_size(path)
    assert size.truncated and (size.declared_samples, size.present_samples) == (4000, 3990)


def test_odd_sized_chunk_before_the_data(tmp_path):
    """Chunks are word-aligned: an odd-sized chunk has a pad byte before the next one."""
    from mmer_lobes.audio import wav_data_size

    path = write_wav(str(tmp_path / "a.wav"), 100)
    raw = open(path, "rb").read()
    fmt_end = 12 + 8 + struct.unpack("<I", raw[16:20])[0]
    odd = b"junk" + struct.pack("<I", 3) + b"abc" + b"\0"
    patched = bytearray(raw[:fmt_end] + odd + raw[fmt_end:])
    patched[4:8] = struct.pack("<I", len(patched) - 8)
    open(path, "wb").write(bytes(patched))
    assert soundfile.info(path).frames == 100
    assert wav_data_size(path) == (200, 200, 2)


def test_truncated_wav_warns_naming_the_file(tmp_path, caplog):
    path = cut(write_wav(str(tmp_path / "Ses01F_impro01_F000.wav")), 1000)
    with caplog.at_level(logging.WARNING):
        assert read_wav_header(path) == (15500, 16000)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert path in warnings[0] and "declares 16000 samples" in warnings[0] and "holds 15500" in warnings[0]


def test_intact_wav_gives_no_warning(tmp_path, caplog):
    path = write_wav(str(tmp_path / "a.wav"))
    with caplog.at_level(logging.WARNING):
        assert read_wav_header(path) == (16000, 16000)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_wav_cut_inside_its_header_is_an_error_naming_it(tmp_path):
    """soundfile refuses a wav with no data chunk; the preparation says which file."""
    path = cut(write_wav(str(tmp_path / "a.wav")), 32044 - 30)
    with pytest.raises(KeyError, match="corrupt or truncated") as error:
        read_wav_header(path, KeyError)
    assert path in str(error.value)
    empty = cut(write_wav(str(tmp_path / "b.wav")), 32000)  # header only
    with pytest.raises(KeyError, match="empty wav file") as error:
        read_wav_header(empty, KeyError)
    assert empty in str(error.value)
