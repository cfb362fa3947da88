"""Training corpus and recipe of the default model (``scripts/train_default.sh``).

The corpus is every source of lung CT the project can use without labels:

``scan/...``
    the real 3D scans of the shared data folder: the A0001 DICOM series and
    the CIP chests ``ct-64.nrrd`` and ``TestInput.nrrd``; lung mask
    :func:`~diffseglung_core.lung.compute_lung_mask`.
``slab/...``
    the real scans only one or two slices thick: the CIP crop
    ``crop_ct_2slices.nrrd``, the cted-open HRCT slices (spacing 1.25 x 0.78
    x 0.78 mm, not stored in the files) and the COVID-19-NY-SBU slices. The
    lung mask is computed on the slices, then slices and mask are repeated
    along z to the patch depth (a thin slab: no through-plane information).
    Slices without lung are left out.
``testbed/...``
    the real-anatomy test bed (:mod:`diffseglung_core.evaluate.testbed`):
    the lesions of each standard case inserted into its real scan, with the
    case's seed plus :data:`TESTBED_SEED_OFFSET`, so the lesions lie elsewhere
    than in the cases the results are scored on.
``phantom/...``
    synthetic chests (:func:`~diffseglung_core.phantom.make_phantom`) of
    several cases (:data:`PHANTOM_CASES`), seeds from :data:`PHANTOM_SEED`
    on (the results use seeds 0-22).

Sampling: patch centres lie in the lung (at least a quarter of each patch is
lung); each source gets ``patches_per_source x`` its kind's weight
(:data:`KIND_WEIGHTS`: a repeated slice is worth a quarter of a volume); in
the test bed and the phantoms, whose pathology is known, a share
``focus_fraction`` (default one half) of the centres is drawn inside the
lesions, so that pathology is not rare among the patches.

``python -m diffseglung_core.training.recipe patches --out DIR`` writes the
patch folder; ``... export --from CKPT --out FILE`` writes the fp16 inference
file with its provenance.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from functools import partial
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..progress import ProgressCallback
from ..volume import CTVolume
from .patches import PatchSource, precompute

__all__ = [
    "KINDS",
    "KIND_WEIGHTS",
    "PHANTOM_CASES",
    "PHANTOM_SEED",
    "TESTBED_SEED_OFFSET",
    "FOCUS_FRACTION",
    "PATCHES_PER_SOURCE",
    "PATCH_SIZE",
    "corpus_sources",
    "corpus_summary",
    "patch_counts",
    "precompute_corpus",
    "thin_slab",
]

log = logging.getLogger(__name__)

#: Kinds of sources, in the order they are listed.
KINDS = ("scan", "slab", "testbed", "phantom")
#: Patches of a source = ``patches_per_source x`` the weight of its kind.
KIND_WEIGHTS = {"scan": 1.0, "slab": 0.25, "testbed": 1.0, "phantom": 1.0}
#: Phantom cases of the corpus (``"abdomen"`` has no lung).
PHANTOM_CASES = ("chest", "chest", "chest", "chest", "white_lung", "effusion", "effusion_left",
                 "pleural_mass", "pleural_mass_diaphragmatic", "chest_abdomen")
#: Seed of the first phantom; phantom ``i`` uses ``PHANTOM_SEED + i``.
PHANTOM_SEED = 100
#: Added to a standard test-bed case's seed for its training copy.
TESTBED_SEED_OFFSET = 1000
#: cted-open slices do not store their voxel size (PROVENANCE.md of the folder).
CTED_SPACING = (1.25, 0.78, 0.78)
#: Corpus settings of the recipe (``scripts/train_default.sh`` holds the training settings).
PATCH_SIZE = (16, 32, 32)
PATCHES_PER_SOURCE = 128
FOCUS_FRACTION = 0.5


# --------------------------------------------------------------------------- makers
# module-level functions (with functools.partial) so that they pickle to the workers


def thin_slab(volume: CTVolume, lung: np.ndarray, focus: Optional[np.ndarray], depth: int):
    """Repeat a volume thinner than ``depth`` slices along z until it is ``depth`` thick or more.

    Parameters
    ----------
    volume : CTVolume
        One or a few slices.
    lung, focus : (Z, Y, X) arrays or None
        Masks on the volume's grid, repeated with it.
    depth : int
        Slices wanted (the patch depth).

    Returns
    -------
    (CTVolume, lung, focus)
        Unchanged when the volume is already ``depth`` slices or more; else
        every slice repeated ``ceil(depth / Z)`` times, same spacing.
    """
    z = volume.shape[0]
    if z >= depth:
        return volume, lung, focus
    reps = math.ceil(depth / z)

    def rep(a):
        return None if a is None else np.repeat(np.asarray(a), reps, axis=0)

    return CTVolume.from_array(rep(volume.hu), volume.spacing, source=volume.source), rep(lung), rep(focus)


def _make_scan(path: str, depth: int, spacing=None):
    from ..io import read_scan
    from ..lung import compute_lung_mask

    vol = read_scan(path, spacing=spacing)
    if vol.shape[0] >= depth:
        return vol, None, None
    return thin_slab(vol, np.asarray(compute_lung_mask(vol.hu, vol.spacing)) != 0, None, depth)


def _make_testbed(name: str, seed: int, data_dir: str, depth: int):
    from ..evaluate import testbed as tb
    from ..labels import Tissue

    vol, lung = tb.load_scan(tb.STANDARD_CASES[name][0], data_dir)
    case = tb.build_case(name, vol, lung, seed=seed)
    return thin_slab(case.volume, case.lung, case.truth > Tissue.HEALTHY, depth)


def _make_phantom(case: str, seed: int, shape: tuple[int, int, int], depth: int):
    from ..labels import Tissue
    from ..phantom import make_phantom

    ph = make_phantom(shape, seed=seed, case=case)
    lung = np.asarray(ph.lung) != 0
    return thin_slab(ph.volume, lung, (np.asarray(ph.labels) > Tissue.HEALTHY) & lung, depth)


# --------------------------------------------------------------------------- corpus


def corpus_sources(data_dir=None, *, patch_depth: int, kinds: Sequence[str] = KINDS,
                   phantom_cases: Sequence[str] = PHANTOM_CASES,
                   phantom_shape: Sequence[int] = (48, 160, 160),
                   testbed_cases: Optional[Sequence[str]] = None) -> list[PatchSource]:
    """The sources of the training corpus that exist in ``data_dir``.

    Parameters
    ----------
    data_dir : path, optional
        The shared real CT folder (default
        :func:`~diffseglung_core.evaluate.testbed.default_data_dir`). Missing
        files are left out (logged); phantoms need none.
    patch_depth : int
        Patch depth: thinner scans become slabs this thick.
    kinds : sequence of str
        Which of :data:`KINDS` to include.
    phantom_cases : sequence of str
        One phantom per entry (cases of :data:`~diffseglung_core.phantom.CASES`).
    phantom_shape : (Z, Y, X)
        Grid of the phantoms.
    testbed_cases : sequence of str, optional
        Standard test-bed cases (default all of them).

    Returns
    -------
    list of PatchSource
        Named ``kind/...``, in the order of ``kinds``.
    """
    from ..evaluate import testbed as tb

    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown source kinds {sorted(unknown)}; choose from {list(KINDS)}")
    d = Path(data_dir) if data_dir else tb.default_data_dir()
    out: list[PatchSource] = []

    def add(kind: str, name: str, path: Path, make):
        if not path.exists():
            log.info("corpus: %s is missing, left out", path)
            return
        out.append(PatchSource(f"{kind}/{name}", make))

    for kind in kinds:
        if kind == "scan":
            for rel in ("lung-pet-ct-dx-A0001/dicom", "cip-chest/ct-64.nrrd", "cip-chest/TestInput.nrrd"):
                add(kind, rel, d / rel, partial(_make_scan, str(d / rel), patch_depth))
        elif kind == "slab":
            rel = "cip-chest/crop_ct_2slices.nrrd"
            add(kind, rel, d / rel, partial(_make_scan, str(d / rel), patch_depth))
            for p in sorted((d / "cted-open" / "slices").glob("*.tif*")):
                add(kind, f"cted-open/{p.stem}", p,
                    partial(_make_scan, str(p), patch_depth, CTED_SPACING))
            for p in sorted((d / "covid-ny-sbu-open").glob("*.dcm")):
                add(kind, f"covid-ny-sbu-open/{p.stem}", p, partial(_make_scan, str(p), patch_depth))
        elif kind == "testbed":
            for name in (tb.STANDARD_CASES if testbed_cases is None else testbed_cases):
                scan, seed, _ = tb.STANDARD_CASES[name]
                if tb.scan_missing(d, scan):
                    log.info("corpus: the scan of test-bed case %s is missing, left out", name)
                    continue
                s = seed + TESTBED_SEED_OFFSET
                out.append(PatchSource(f"testbed/{name}-s{s}",
                                       partial(_make_testbed, name, s, str(d), patch_depth)))
        else:
            for i, case in enumerate(phantom_cases):
                s = PHANTOM_SEED + i
                out.append(PatchSource(f"phantom/{case}-s{s}", partial(
                    _make_phantom, case, s, tuple(int(v) for v in phantom_shape), patch_depth)))
    return out


def patch_counts(sources: Sequence[PatchSource], patches_per_source: int,
                 weights: Optional[dict] = None) -> list[int]:
    """Patches of each source: ``patches_per_source x`` its kind's weight, at least 1."""
    w = dict(KIND_WEIGHTS, **(weights or {}))
    return [max(1, int(round(patches_per_source * w[s.name.split("/", 1)[0]]))) for s in sources]


def precompute_corpus(out_dir, data_dir=None, *, patch_size: Sequence[int] = PATCH_SIZE,
                      patches_per_source: int = PATCHES_PER_SOURCE,
                      focus_fraction: float = FOCUS_FRACTION,
                      weights: Optional[dict] = None, kinds: Sequence[str] = KINDS,
                      phantom_cases: Sequence[str] = PHANTOM_CASES,
                      phantom_shape: Sequence[int] = (48, 160, 160),
                      testbed_cases: Optional[Sequence[str]] = None, workers: Optional[int] = None,
                      seed: int = 0, overwrite: bool = False,
                      progress: Optional[ProgressCallback] = None) -> Path:
    """Cut the corpus's patches into a patch folder (:func:`~.patches.precompute`).

    Parameters are those of :func:`corpus_sources` and
    :func:`~.patches.precompute`; CT is stored as float16.

    Returns
    -------
    Path
        ``out_dir`` (``patches.json`` lists each source, its count, its
        centres and, for the test bed and the phantoms, how many patches hold
        pathology).
    """
    size = tuple(int(s) for s in patch_size)
    sources = corpus_sources(data_dir, patch_depth=size[0], kinds=kinds, phantom_cases=phantom_cases,
                             phantom_shape=phantom_shape, testbed_cases=testbed_cases)
    if not sources:
        from ..errors import DiffSegLungError

        raise DiffSegLungError("the training corpus is empty (no data folder and no phantoms)")
    return precompute(sources, out_dir, patches_per_scan=patch_counts(sources, patches_per_source, weights),
                      patch_size=size, workers=workers, seed=seed, focus_fraction=focus_fraction,
                      skip_empty=True, overwrite=overwrite, progress=progress)


def corpus_summary(folder) -> dict:
    """Patches per kind of source, and the share holding pathology where it is known."""
    settings = json.loads((Path(folder) / "patches.json").read_text())
    kinds: dict[str, dict] = {}
    for s in settings["scans"]:
        k = kinds.setdefault(s["id"].split("/", 1)[0], {"sources": 0, "patches": 0})
        k["sources"] += 1
        k["patches"] += s["count"]
        if "patches_with_focus" in s:
            k["patches_with_pathology"] = k.get("patches_with_pathology", 0) + s["patches_with_focus"]
    return {"n_patches": settings["n_patches"], "patch_size": settings["patch_size"],
            "focus_fraction": settings.get("focus_fraction", 0.0), "kinds": kinds,
            "skipped": [s["id"] for s in settings.get("skipped", [])]}


# --------------------------------------------------------------------------- command line


def _provenance(source: Path, patches: Optional[Path]) -> dict:
    from ..model.checkpoint import load_checkpoint

    ck = load_checkpoint(source)
    tr = ck.get("training") or {}
    prov: dict = {"recipe": "scripts/train_default.sh (diffseglung_core.training.recipe)",
                  "stage2": tr.get("train_config"), "stage2_step": tr.get("step")}
    init = tr.get("init_from")
    if init and Path(init).is_file():
        tr1 = load_checkpoint(init).get("training") or {}
        prov.update(stage1=tr1.get("train_config"), stage1_step=tr1.get("step"))
    if patches is not None:
        prov["patches"] = corpus_summary(patches)
    return prov


def main(argv=None) -> int:
    """``patches``: precompute the corpus; ``export``: write the inference file."""
    p = argparse.ArgumentParser(prog="python -m diffseglung_core.training.recipe",
                                description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("patches", help="cut the corpus's patches into a patch folder")
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--data", type=Path, help="shared real CT folder (default ../shared/data)")
    a.add_argument("--patch-size", type=int, nargs=3, default=PATCH_SIZE,
                   metavar=("D", "H", "W"))
    a.add_argument("--patches-per-source", type=int, default=PATCHES_PER_SOURCE)
    a.add_argument("--focus-fraction", type=float, default=FOCUS_FRACTION)
    a.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    a.add_argument("--phantom-shape", type=int, nargs=3, default=(48, 160, 160))
    a.add_argument("--workers", type=int, default=None)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--overwrite", action="store_true")
    e = sub.add_parser("export", help="write the fp16 inference file of a stage-2 checkpoint")
    e.add_argument("--from", dest="source", type=Path, required=True, metavar="CKPT")
    e.add_argument("--out", type=Path, required=True, metavar="FILE")
    e.add_argument("--patches", type=Path, help="the patch folder it was trained on (provenance)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "patches":
        out = precompute_corpus(args.out, args.data, patch_size=args.patch_size,
                                patches_per_source=args.patches_per_source,
                                focus_fraction=args.focus_fraction, kinds=args.kinds,
                                phantom_shape=args.phantom_shape, workers=args.workers,
                                seed=args.seed, overwrite=args.overwrite)
        print(json.dumps(corpus_summary(out), indent=1))
        return 0
    from .checkpoint import export_model

    export_model(args.source, args.out, _provenance(args.source, args.patches))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
