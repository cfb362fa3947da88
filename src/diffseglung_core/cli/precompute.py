"""``diffseglung precompute``: cut lung patches from scans into memory-mapped .npy files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_overwrite_argument, progress_bar

HELP = "cut training patches (CT + lung mask) from scans into ct.npy / mask.npy / patient_ids.npy"

#: File endings taken as scans when a folder is given.
SCAN_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".npz", ".zip")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scans", nargs="+", type=Path,
                        help="scan files or DICOM folders, or folders holding them")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder to write the patches to")
    parser.add_argument("--patches-per-scan", type=int, default=150, metavar="N",
                        help="patches cut from each scan (default: 150)")
    parser.add_argument("--patch-size", type=int, nargs=3, default=(32, 96, 96), metavar=("D", "H", "W"),
                        help="patch size in voxels, z y x (default: 32 96 96)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes (default: all CPUs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the patch positions (default: 0)")
    parser.add_argument("--float32", action="store_true", help="store the CT as float32 (default: float16)")
    add_overwrite_argument(parser)


def find_scans(paths) -> list[Path]:
    """Expand folders into the scans they hold; a folder of DICOM files is one scan."""
    from ..errors import DiffSegLungError

    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(2, "no such file or folder", str(path))
        if path.is_file() or _is_dicom_folder(path):
            found.append(path)
            continue
        inside = [p for p in sorted(path.iterdir()) if not p.name.startswith(".")
                  and ((p.is_file() and p.name.lower().endswith(SCAN_SUFFIXES))
                       or (p.is_dir() and _is_dicom_folder(p)))]
        if not inside:
            raise DiffSegLungError(f"{path}: no scans found (looked for {', '.join(SCAN_SUFFIXES)} "
                                   "files and DICOM folders)")
        found.extend(inside)
    return found


def _is_dicom_folder(path: Path) -> bool:
    if not path.is_dir():
        return False
    files = [p for p in path.iterdir() if p.is_file()]
    if any(p.suffix.lower() == ".dcm" for p in files):
        return True
    for p in files[:3]:
        with open(p, "rb") as fh:
            head = fh.read(132)
        if head[128:132] == b"DICM":
            return True
    return False


def run(args: argparse.Namespace) -> int:
    from ..training.patches import precompute

    scans = find_scans(args.scans)
    with progress_bar("precompute") as progress:
        out = precompute(scans, args.output, patches_per_scan=args.patches_per_scan,
                         patch_size=tuple(args.patch_size), workers=args.workers, seed=args.seed,
                         dtype="float32" if args.float32 else "float16", overwrite=args.overwrite,
                         progress=progress)
    n = len(scans) * args.patches_per_scan
    print(f"wrote {n} patches of {tuple(args.patch_size)} voxels from {len(scans)} scans to {out}")
    return 0
