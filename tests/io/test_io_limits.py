"""Absurd and hostile inputs are refused from what they declare, before memory runs out.

The hostile files are small on disk and declare gigabytes: a 7 MB ``.nii.gz``
whose header declares 1536^3 int16 voxels (7.2 GB of zeros when inflated) and a
3 MB zip holding one 3 GB member. Each is read in a child process whose address
space is capped (so a regression fails the test instead of the machine), and
the child reports the time ``read_scan`` took and its own peak resident memory
(``VmHWM``, Linux).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from diffseglung_core.errors import ScanReadError
from diffseglung_core.io import DEFAULT_MAX_VOXELS, max_voxels, read_scan, voxel_limit
from diffseglung_core.io.limits import MAX_FILE_BYTES, check_declared_size

from io_builders import (
    ct_raw,
    gzip_of_zeros,
    nifti_header_bytes,
    unique_hu,
    write_dicom_series,
    write_nifti,
    zip_of_zeros,
)

#: The child reads its peak memory from /proc and caps its address space (Linux).
linux_only = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")

#: The bounds of the issue: every bad input ends within 10 s and 2 GB.
SECONDS, PEAK_MB = 10.0, 2048

_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))  # a regression fails, not the host
    from diffseglung_core.io import read_scan
    from diffseglung_core.errors import ScanReadError
    t = time.perf_counter()
    try:
        read_scan(sys.argv[1])
        error = None
    except ScanReadError as err:
        error = str(err)
    except MemoryError:
        error = "MemoryError"
    seconds = time.perf_counter() - t
    # VmHWM: the peak of this program's own memory (ru_maxrss would carry the forking parent's)
    with open("/proc/self/status") as fh:
        peak_mb = next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) / 1024
    print(json.dumps({"error": error, "seconds": seconds, "peak_mb": peak_mb}))
""")


def _read_in_child(path: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@linux_only
def test_nifti_declaring_1536_cubed_voxels_is_refused_from_its_header(tmp_path):
    path = gzip_of_zeros(tmp_path / "zeros.nii.gz", nifti_header_bytes((1536, 1536, 1536)),
                         1536**3 * 2)
    assert path.stat().st_size < 10e6  # 7 MB on disk, 7.2 GB inflated
    got = _read_in_child(path)
    assert got["error"] is not None and "1536 x 1536 x 1536" in got["error"]
    assert "over the limit" in got["error"] and "--max-voxels" in got["error"]
    assert got["seconds"] < SECONDS and got["peak_mb"] < PEAK_MB, got


@linux_only
def test_zip_with_one_3gb_member_is_refused_unread(tmp_path):
    path = zip_of_zeros(tmp_path / "bomb.zip", "IMG0001.dcm", 3 * 2**30)
    assert path.stat().st_size < 5e6
    got = _read_in_child(path)
    assert got["error"] is not None and "no DICOM images found" in got["error"]
    assert "IMG0001.dcm" in got["error"] and "left out unread" in got["error"]
    assert got["seconds"] < SECONDS and got["peak_mb"] < PEAK_MB, got


@linux_only
def test_zip_member_lying_about_its_size_is_read_no_further_than_declared(tmp_path):
    # the central directory says 1 MB; the stream inflates to 300 MB
    import struct

    path = zip_of_zeros(tmp_path / "liar.zip", "IMG0001.dcm", 300 * 2**20)
    raw = bytearray(path.read_bytes())
    central = raw.rfind(struct.pack("<I", 0x02014B50))
    raw[central + 24:central + 28] = struct.pack("<I", 2**20)  # uncompressed size
    raw[22:26] = struct.pack("<I", 2**20)  # the same in the local header
    path.write_bytes(bytes(raw))
    got = _read_in_child(path)
    assert got["error"] is not None and "Bad CRC-32 for file 'IMG0001.dcm'" in got["error"]
    assert got["seconds"] < SECONDS and got["peak_mb"] < 250, got  # never the 300 MB inflated


def test_huge_file_in_a_dicom_folder_is_left_out_unread(tmp_path):
    folder = tmp_path / "series"
    write_dicom_series(folder, ct_raw(3, 8, 8))
    with open(folder / "huge.dcm", "wb") as fh:  # sparse: takes no disk
        fh.truncate(MAX_FILE_BYTES + 1)
    vol = read_scan(folder)  # the series is read; the huge file is never opened
    assert vol.shape == (3, 8, 8)
    (folder / "only").mkdir()
    with open(folder / "only" / "huge.dcm", "wb") as fh:
        fh.truncate(3 * 2**30)
    with pytest.raises(ScanReadError, match=r"no DICOM images found \(1 file\(s\) over 256 MiB left "
                                            r"out unread: huge.dcm\)"):
        read_scan(folder / "only")


def test_dicom_headers_declaring_a_huge_series_are_refused_before_pixels(tmp_path):
    write_dicom_series(tmp_path / "s", ct_raw(4, 8, 8))
    with voxel_limit(4 * 8 * 8 - 1):
        with pytest.raises(ScanReadError, match=r"the series' headers declare 4 x 8 x 8 = 256 voxels, "
                                                r"over the limit of 255"):
            read_scan(tmp_path / "s")
    assert read_scan(tmp_path / "s", max_voxels=256).shape == (4, 8, 8)


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nrrd", "ct.npz", "ct.tif"])
def test_every_format_checks_the_declared_size_before_reading(tmp_path, name):
    data = unique_hu((6, 7, 8))
    path = tmp_path / name
    if name.endswith(".nii.gz"):
        write_nifti(path, data, np.eye(4))
    elif name.endswith(".nrrd"):
        import nrrd

        nrrd.write(str(path), data, {"spacings": [1.0, 1.0, 1.0], "encoding": "gzip"})
    elif name.endswith(".npz"):
        np.savez_compressed(path, hu=data, spacing=np.ones(3))
    else:
        import tifffile

        tifffile.imwrite(path, data)
    kwargs = {"spacing": (1.0, 1.0, 1.0)}
    with pytest.raises(ScanReadError, match="336 voxels, over the limit of 335"):
        read_scan(path, max_voxels=335, **kwargs)
    assert read_scan(path, max_voxels=336, **kwargs).hu.size == 336


def test_nrrd_gzip_holding_more_than_declared_is_not_inflated_whole(tmp_path):
    import gzip

    header = (b"NRRD0004\ntype: short\ndimension: 3\nsizes: 8 7 6\nspacings: 1 1 1\n"
              b"endian: little\nencoding: gzip\n\n")
    payload = unique_hu((6, 7, 8)).tobytes() + bytes(200 * 2**20)  # 200 MB of trailing zeros
    (tmp_path / "bomb.nrrd").write_bytes(header + gzip.compress(payload, compresslevel=1))
    with pytest.raises(ScanReadError, match="more bytes than the header's 8 x 7 x 6"):
        read_scan(tmp_path / "bomb.nrrd")
    (tmp_path / "short.nrrd").write_bytes(header + gzip.compress(payload[:100]))
    with pytest.raises(ScanReadError, match="fewer bytes"):
        read_scan(tmp_path / "short.nrrd")


def test_npz_member_shape_is_read_from_its_header(tmp_path):
    np.savez_compressed(tmp_path / "a.npz", hu=unique_hu((6, 7, 8)), spacing=np.ones(3),
                        affine=np.zeros((100, 100)))
    with pytest.raises(ScanReadError, match=r"'affine' holds \(100, 100\) values"):
        read_scan(tmp_path / "a.npz")


def test_declared_size_against_the_memory_available(monkeypatch):
    from diffseglung_core.io import limits

    monkeypatch.setattr(limits, "available_memory", lambda: 1_000_000_000)
    assert check_declared_size("ct.nii", (100, 100, 100), 2) == 10**6
    with pytest.raises(ScanReadError, match=r"needs about 5.0 GB and this machine has 1.0 GB available"):
        check_declared_size("ct.nii", (500, 1000, 1000), 2)
    with pytest.raises(ScanReadError, match="negative size"):
        check_declared_size("ct.nii", (5, -1, 3), 2)


def test_limit_from_the_environment_and_from_the_caller(monkeypatch):
    monkeypatch.delenv("DIFFSEGLUNG_MAX_VOXELS", raising=False)
    assert max_voxels() == DEFAULT_MAX_VOXELS == 512 * 512 * 2048
    monkeypatch.setenv("DIFFSEGLUNG_MAX_VOXELS", "1e6")
    assert max_voxels() == 10**6
    with voxel_limit(5):
        assert max_voxels() == 5
    assert max_voxels() == 10**6
    monkeypatch.setenv("DIFFSEGLUNG_MAX_VOXELS", "many")
    with pytest.raises(ValueError, match="DIFFSEGLUNG_MAX_VOXELS"):
        max_voxels()
