"""HU-guided assignment of clusters to tissue labels.

Clusters are named from their *absolute* density after a per-scan calibration,
never from their rank: a scan with no voxel below the emphysema range gets no
emphysema, however many clusters it has.

1. **Calibration** (:func:`diffseglung_core.calibration.calibrate_hu`). Air
   should read -1000 HU. The air around the patient inside the field of view
   (never the padding outside it) and, when known, the trachea give an offset
   that is subtracted before the rules below, but only when the measurement
   clearly supports it; otherwise the offset is 0. The
   :class:`~diffseglung_core.calibration.HUCalibration` (what was measured,
   whether it was applied, why) is kept in :attr:`LabelMapping.calibration`.
2. **Cluster statistics** (:func:`cluster_stats`): posterior-weighted mean HU,
   percentiles of the voxels the cluster wins, the low-attenuation fractions
   below -950 and -910 HU and the mean local standard deviation (texture).
3. **Rules** (:class:`AssignmentRules`), from literature ranges: emphysema
   below about -950/-910 HU, healthy about -900..-750, GGO about -700..-300,
   consolidation above about -200, fibrosis at mid density with high texture.
   The boundaries sit between the ranges. A cluster whose density fits no
   lung tissue (brighter than soft tissue: bone, contrast, metal; or a wide
   mixture) is still given the nearest label but *flagged*.
   The healthy/GGO boundary adapts to the scan: it is the healthy-lung mode of
   the lung histogram (calibrated, searched in -950..-650 HU) plus
   ``healthy_margin``, kept within ``healthy_below_range``; dependent or
   expiratory lung is denser than the textbook -850 HU.
4. **Voxel gates.** A voxel of an emphysema cluster whose smoothed, calibrated
   HU is above ``emphysema_gate_hu`` is labelled healthy: emphysema needs low
   density at the voxel, not only in its cluster. A voxel of a dense cluster
   (GGO, fibrosis, consolidation) whose neighbourhood (``context_hu``, the
   large-scale masked mean) is as light as healthy lung is a vessel or a
   fissure inside healthy lung and is labelled healthy.

The result is a :class:`LabelMapping`, editable (:meth:`LabelMapping.with_label`)
and serialisable (:meth:`LabelMapping.to_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Optional, Sequence

import numpy as np

from ..calibration import HUCalibration
from ..labels import TISSUE_NAMES, Tissue

__all__ = ["AssignmentRules", "LabelMapping", "cluster_stats",
           "assign_labels", "label_probabilities", "N_LABELS"]

#: Number of label values (0..5).
N_LABELS = len(Tissue)


@dataclass(frozen=True)
class AssignmentRules:
    """HU boundaries (calibrated HU) and texture threshold of the assignment.

    Attributes
    ----------
    emphysema_below : a cluster with mean HU below this is emphysema ...
    emphysema_laa950 : ... if at least this fraction of its voxels is below -950 HU;
        a cluster with more than ``emphysema_laa_alone`` below -950 is emphysema whatever its mean.
    healthy_below : upper end of healthy lung (healthy/GGO boundary).
    ggo_below : upper end of GGO (GGO/consolidation boundary).
    fibrosis_std : local standard deviation (HU, small scale) above which a
        mid-density cluster (between ``healthy_below - 50`` and ``ggo_below + 50``) is fibrosis,
        if its texture is also ``fibrosis_texture_ratio`` times that of the healthy
        lung (all healthy-density clusters together), so that image noise is not texture.
    soft_tissue_above : clusters denser than this fit no lung tissue (flagged).
    mixed_iqr : clusters with an HU interquartile range wider than this are flagged as mixed.
    emphysema_gate_hu : voxel gate of emphysema (see module docstring).
    ggo_margin_hu : with structure evidence, GGO needs the parenchyma around a voxel
        (dense structures left out) this much denser than the slice's healthy lung;
        ``ggo_upgrade_hu`` above it, a voxel is GGO whatever its cluster, and so is a
        voxel that itself reads ``ggo_margin_hu`` above it in such parenchyma, in a
        volume whose grid resolves the lung's walls (see :func:`evidence_gates`).
    fibrosis_wall, fibrosis_wall_central : with structure evidence, fibrosis needs this
        share of thin non-tubular walls around a voxel at the pleura, rising to
        ``fibrosis_wall_central`` 30 mm deep (fibrosis is predominantly subpleural).
    fibrosis_max_coherence : the walls must form a net: their in-plane orientation
        coherence around the voxel (:func:`~.evidence.orientation_coherence`) below this.
        0.6 means the edges across the main direction carry at least a quarter of the
        energy of those along it; a single line or sheet (a fissure, a subpleural line,
        the blurred border of the heart) is near 1.
    coarse_net_mm : on a grid too coarse to resolve the walls of a net
        (:data:`~.evidence.WALL_RESOLVING_MM`), where thin structures of any shape and
        texture stand in for them, fibrosis and honeycombing are read no deeper than this
        under the pleura (where the wall share needed stops rising): deeper, towards the
        hila, bronchi and vessels crowd, and on such a grid they read as a net does.
    fibrotic_share, fibrotic_mm : with structure evidence, ground glass where fibrosis
        makes up at least this share of the abnormal lung around it (Gaussian of
        ``fibrotic_mm``) is part of the fibrosis
        (:func:`~.patterns.fibrotic_ground_glass`); 0 turns it off.
    """

    emphysema_below: float = -880.0
    emphysema_laa950: float = 0.25
    emphysema_laa_alone: float = 0.6
    healthy_below: float = -725.0
    ggo_below: float = -250.0
    fibrosis_std: float = 130.0
    fibrosis_texture_ratio: float = 2.0
    soft_tissue_above: float = 150.0
    mixed_iqr: float = 250.0
    emphysema_gate_hu: float = -910.0
    healthy_margin: float = 110.0
    healthy_below_range: tuple = (-725.0, -600.0)
    context_gate: bool = True
    ggo_margin_hu: float = 120.0
    ggo_upgrade_hu: float = 250.0
    fibrosis_wall: float = 0.10
    fibrosis_wall_central: float = 0.20
    fibrosis_max_coherence: float = 0.6
    coarse_net_mm: float = 30.0
    fibrotic_share: float = 1.0 / 3.0
    fibrotic_mm: float = 10.0


@dataclass
class LabelMapping:
    """Cluster index -> tissue label, with the evidence behind it.

    Attributes
    ----------
    labels : list of int, ``labels[k]`` is the :class:`~diffseglung_core.labels.Tissue`
        value of cluster ``k`` (several clusters may share one).
    flags : list of str, ``""`` or why cluster ``k`` fits no tissue well.
    stats : list of dict, per-cluster HU statistics (see :func:`cluster_stats`).
    hu_offset : HU subtracted by the calibration (the applied offset).
    rules : the :class:`AssignmentRules` used.
    edited : clusters whose label a user changed.
    healthy_mode_hu : calibrated healthy-lung mode of the lung histogram.
    voxelwise : clusters of mixed density (flagged) whose voxels are labelled one by
        one from their smoothed, calibrated HU with the same boundaries
        (``labels[k]`` is then only the majority label); editing a cluster clears it.
    calibration : :meth:`HUCalibration.to_dict` of the calibration behind
        ``hu_offset`` (what was measured, whether applied, why); empty when the
        offset was given directly.
    """

    labels: list[int]
    flags: list[str] = field(default_factory=list)
    stats: list[dict] = field(default_factory=list)
    hu_offset: float = 0.0
    rules: AssignmentRules = field(default_factory=AssignmentRules)
    edited: list[int] = field(default_factory=list)
    healthy_mode_hu: float = float("nan")
    voxelwise: list[bool] = field(default_factory=list)
    calibration: dict = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return len(self.labels)

    def with_label(self, cluster: int, label: int) -> LabelMapping:
        """A copy with cluster ``cluster`` mapped to ``label`` (0..5)."""
        label = int(Tissue(label))
        labels = list(self.labels)
        labels[int(cluster)] = label
        edited = sorted(set(self.edited) | {int(cluster)})
        voxelwise = list(self.voxelwise)
        if int(cluster) < len(voxelwise):
            voxelwise[int(cluster)] = False
        return replace(self, labels=labels, edited=edited, voxelwise=voxelwise)

    def matrix(self) -> np.ndarray:
        """(K, 6) float32 one-hot matrix: cluster posteriors @ matrix = label posteriors."""
        m = np.zeros((self.n_clusters, N_LABELS), np.float32)
        m[np.arange(self.n_clusters), self.labels] = 1.0
        return m

    def to_dict(self) -> dict:
        """JSON-ready description (cluster, label, label name, flag, HU statistics)."""
        return {
            "hu_offset": float(self.hu_offset),
            "calibration": dict(self.calibration),
            "healthy_mode_hu": float(self.healthy_mode_hu),
            "rules": asdict(self.rules),
            "edited": list(self.edited),
            "clusters": [
                {"cluster": k, "label": int(lab), "name": TISSUE_NAMES[int(lab)],
                 "flag": self.flags[k] if k < len(self.flags) else "",
                 "voxelwise": bool(self.voxelwise[k]) if k < len(self.voxelwise) else False,
                 **(self.stats[k] if k < len(self.stats) else {})}
                for k, lab in enumerate(self.labels)],
        }

    @classmethod
    def from_dict(cls, d: dict) -> LabelMapping:
        clusters = sorted(d["clusters"], key=lambda c: c["cluster"])
        keys = ("cluster", "label", "name", "flag", "voxelwise")
        return cls(labels=[int(c["label"]) for c in clusters],
                   flags=[c.get("flag", "") for c in clusters],
                   stats=[{k: v for k, v in c.items() if k not in keys} for c in clusters],
                   hu_offset=float(d.get("hu_offset", 0.0)),
                   healthy_mode_hu=float(d.get("healthy_mode_hu", float("nan"))),
                   rules=AssignmentRules(**{k: tuple(v) if isinstance(v, list) else v
                                            for k, v in d.get("rules", {}).items()}),
                   edited=list(d.get("edited", [])),
                   voxelwise=[bool(c.get("voxelwise", False)) for c in clusters],
                   calibration=dict(d.get("calibration") or {}))


def healthy_boundary(smooth_hu: np.ndarray, hu_offset: float, rules: AssignmentRules) -> tuple[float, float]:
    """(healthy mode, healthy/GGO boundary) in calibrated HU from the lung histogram."""
    v = np.asarray(smooth_hu, np.float32) - np.float32(hu_offset)
    v = v[(v > -950) & (v < -650)]
    if v.size < 100:
        return float("nan"), float(rules.healthy_below)
    hist, edges = np.histogram(v, bins=np.arange(-950, -645, 5))
    hist = np.convolve(hist, np.ones(5) / 5, mode="same")
    mode = float(edges[int(hist.argmax())] + 2.5)
    lo, hi = rules.healthy_below_range
    return mode, float(np.clip(mode + rules.healthy_margin, lo, hi))


def cluster_stats(hu_vox: np.ndarray, posteriors: np.ndarray, *, texture: Optional[np.ndarray] = None,
                  max_rows: int = 500_000, seed: int = 0) -> list[dict]:
    """HU statistics of each cluster.

    Parameters
    ----------
    hu_vox : (N,) HU of the lung voxels (calibrated or not; reported as given).
    posteriors : (N, K) cluster posteriors.
    texture : (N,) local HU standard deviation, optional.
    max_rows : statistics use at most this many random rows.

    Returns
    -------
    list of K dicts: ``fraction`` (posterior mass / N), ``n_voxels`` (argmax
    count), ``mean_hu``, ``std_hu``, ``p10_hu``, ``p25_hu``, ``median_hu``,
    ``p75_hu``, ``p90_hu``, ``laa950``, ``laa910`` (fractions), ``texture_std_hu``.
    """
    n, k = posteriors.shape
    hard = posteriors.argmax(1)
    counts = np.bincount(hard, minlength=k)
    if n > max_rows:
        rows = np.random.default_rng(seed).choice(n, max_rows, replace=False)
        hu_s, post, hard_s = hu_vox[rows], posteriors[rows], hard[rows]
        tex = texture[rows] if texture is not None else None
    else:
        hu_s, post, hard_s, tex = hu_vox, posteriors, hard, texture
    hu_s = hu_s.astype(np.float64)
    out = []
    mass = posteriors.sum(0) / max(n, 1)
    for c in range(k):
        w = post[:, c].astype(np.float64)
        sw = w.sum()
        d: dict = {"fraction": float(mass[c]), "n_voxels": int(counts[c])}
        if sw <= 0:
            d.update({key: float("nan") for key in ("mean_hu", "std_hu", "p10_hu", "p25_hu",
                                                    "median_hu", "p75_hu", "p90_hu", "laa950",
                                                    "laa910", "texture_std_hu")})
            out.append(d)
            continue
        mean = float((w * hu_s).sum() / sw)
        d["mean_hu"] = mean
        d["std_hu"] = float(np.sqrt((w * (hu_s - mean) ** 2).sum() / sw))
        won = hu_s[hard_s == c] if (hard_s == c).any() else hu_s[w >= w.max() * 0.5]
        for name, q in (("p10_hu", 10), ("p25_hu", 25), ("median_hu", 50), ("p75_hu", 75),
                        ("p90_hu", 90)):
            d[name] = float(np.percentile(won, q))
        d["laa950"] = float((w * (hu_s < -950)).sum() / sw)
        d["laa910"] = float((w * (hu_s < -910)).sum() / sw)
        d["texture_std_hu"] = float((w * tex).sum() / sw) if tex is not None else float("nan")
        out.append(d)
    return out


def _label_of(s: dict, r: AssignmentRules, healthy_texture: float = 0.0) -> tuple[int, str]:
    mean, tex = s["mean_hu"], s.get("texture_std_hu", float("nan"))
    if not np.isfinite(mean):
        return int(Tissue.HEALTHY), "empty cluster"
    flag = ""
    if s["p75_hu"] - s["p25_hu"] > r.mixed_iqr:
        flag = f"mixed densities (IQR {s['p75_hu'] - s['p25_hu']:.0f} HU)"
    if (mean < r.emphysema_below and s["laa950"] >= r.emphysema_laa950) \
            or s["laa950"] >= r.emphysema_laa_alone:
        return int(Tissue.EMPHYSEMA), flag
    if mean < r.emphysema_below:
        # very low mean but few voxels below -950: noisy healthy lung or airway wall mix
        return int(Tissue.HEALTHY), flag or "low density but little below -950 HU"
    if (np.isfinite(tex) and tex >= max(r.fibrosis_std, r.fibrosis_texture_ratio * healthy_texture)
            and r.healthy_below - 50 <= mean < r.ggo_below + 50):
        return int(Tissue.FIBROSIS), flag
    if mean < r.healthy_below:
        return int(Tissue.HEALTHY), flag
    if mean < r.ggo_below:
        return int(Tissue.GGO), flag
    if mean > r.soft_tissue_above:
        return int(Tissue.CONSOLIDATION), f"denser than soft tissue ({mean:.0f} HU): bone, contrast or metal?"
    return int(Tissue.CONSOLIDATION), flag


def assign_labels(hu_vox: np.ndarray, posteriors: np.ndarray, *, texture: Optional[np.ndarray] = None,
                  hu_offset: float = 0.0, rules: AssignmentRules = AssignmentRules(),
                  calibration: Optional[HUCalibration] = None) -> LabelMapping:
    """Map clusters to tissue labels from their calibrated HU statistics.

    Parameters
    ----------
    hu_vox : (N,) HU of the lung voxels (uncalibrated; ``hu_offset`` is subtracted here);
        the statistics are of these values (the engine passes the raw voxel HU).
    posteriors : (N, K) cluster posteriors.
    texture : (N,) local HU standard deviation, for fibrosis.
    hu_offset : HU to subtract; ignored when ``calibration`` is given.
    calibration : from :func:`diffseglung_core.calibration.calibrate_hu`; its
        ``offset_hu`` is subtracted and its report kept in the mapping.

    Returns
    -------
    LabelMapping (statistics in calibrated HU).
    """
    if calibration is not None:
        hu_offset = calibration.offset_hu
    mode, boundary = healthy_boundary(hu_vox, hu_offset, rules)
    rules = replace(rules, healthy_below=boundary)
    stats = cluster_stats(np.asarray(hu_vox, np.float32) - np.float32(hu_offset), posteriors,
                          texture=texture)
    healthy = [st for st in stats if np.isfinite(st["mean_hu"])
               and rules.emphysema_below <= st["mean_hu"] < rules.healthy_below]
    # the texture of healthy lung: of all its clusters together (the same however the
    # mixture splits healthy lung into clusters)
    weighted = [(st["fraction"], st["texture_std_hu"]) for st in healthy
                if np.isfinite(st["texture_std_hu"]) and st["fraction"] > 0]
    tex0 = (sum(f * t for f, t in weighted) / sum(f for f, _ in weighted)) if weighted else 0.0
    pairs = [_label_of(s, rules, tex0) for s in stats]
    # fibrosis is heterogeneous by nature: a textured mid-density cluster stays whole
    voxelwise = [f.startswith("mixed") and lab != Tissue.FIBROSIS for lab, f in pairs]
    return LabelMapping(labels=[p[0] for p in pairs], flags=[p[1] for p in pairs], stats=stats,
                        hu_offset=float(hu_offset), rules=rules, healthy_mode_hu=mode,
                        voxelwise=voxelwise,
                        calibration=calibration.to_dict() if calibration is not None else {})


def density_label(hu: np.ndarray, rules: AssignmentRules, hu_offset: float = 0.0) -> np.ndarray:
    """(N,) uint8 label of each voxel from its (smoothed) HU alone, with the rules' boundaries."""
    h = np.asarray(hu, np.float32) - np.float32(hu_offset)
    out = np.full(h.shape, Tissue.CONSOLIDATION, np.uint8)
    out[h < rules.ggo_below] = Tissue.GGO
    out[h < rules.healthy_below] = Tissue.HEALTHY
    out[h < rules.emphysema_gate_hu] = Tissue.EMPHYSEMA
    return out


def label_probabilities(posteriors: np.ndarray, mapping: LabelMapping, *,
                        smooth_hu: Optional[np.ndarray] = None,
                        context_hu: Optional[np.ndarray] = None,
                        evidence=None,
                        chunk: int = 1_000_000) -> np.ndarray:
    """(N, 6) float32 label posteriors: cluster posteriors summed per label.

    With ``evidence`` (a :class:`~.evidence.TissueEvidence` of the same voxels)
    the structure around each voxel decides over the name of its cluster (see
    :func:`evidence_gates`); clusters a user relabelled keep their label. Without
    it, two density gates: with ``smooth_hu`` (N,) (smoothed, *uncalibrated* HU
    of each voxel) the emphysema mass of voxels denser than
    ``rules.emphysema_gate_hu`` moves to healthy; with ``context_hu`` (N,)
    (large-scale masked mean HU, uncalibrated) and ``rules.context_gate``, the
    GGO, fibrosis and consolidation mass of voxels whose context is lighter than
    ``rules.healthy_below`` moves to healthy (vessels in healthy lung).
    """
    m = mapping.matrix()
    vw = np.zeros(mapping.n_clusters, bool)
    vw[:len(mapping.voxelwise)] = mapping.voxelwise[:mapping.n_clusters]
    if vw.any() and smooth_hu is not None:
        m[vw] = 0.0
    else:
        vw[:] = False
    out = np.empty((posteriors.shape[0], N_LABELS), np.float32)
    gate = mapping.rules.emphysema_gate_hu + mapping.hu_offset
    for s in range(0, posteriors.shape[0], chunk):
        post = posteriors[s:s + chunk].astype(np.float32)
        p = post @ m
        if vw.any():
            lab = density_label(smooth_hu[s:s + chunk], mapping.rules, mapping.hu_offset)
            p[np.arange(len(p)), lab] += post[:, vw].sum(1)
        if evidence is not None:
            edited = np.zeros(mapping.n_clusters, bool)
            edited[[c for c in mapping.edited if c < mapping.n_clusters]] = True
            kept = post[:, edited] @ m[edited] if edited.any() else 0.0
            p = evidence_gates(p - kept, evidence, slice(s, s + chunk), mapping.rules) + kept
        elif smooth_hu is not None:
            dense = smooth_hu[s:s + chunk] > gate
            p[dense, Tissue.HEALTHY] += p[dense, Tissue.EMPHYSEMA]
            p[dense, Tissue.EMPHYSEMA] = 0.0
        if evidence is None and context_hu is not None and mapping.rules.context_gate:
            light = context_hu[s:s + chunk] < mapping.rules.healthy_below + mapping.hu_offset
            for t in (Tissue.GGO, Tissue.FIBROSIS, Tissue.CONSOLIDATION):
                p[light, Tissue.HEALTHY] += p[light, t]
                p[light, t] = 0.0
        out[s:s + chunk] = p
    return out


def _move(p: np.ndarray, where: np.ndarray, source: Sequence[int], target) -> None:
    """Move the mass of labels ``source`` to ``target`` (a label or a per-row label array)."""
    if not np.any(where):
        return
    rows = np.flatnonzero(where)
    mass = p[np.ix_(rows, list(source))].sum(1)
    p[np.ix_(rows, list(source))] = 0.0
    t = np.broadcast_to(np.asarray(target), where.shape)[rows]
    p[rows, t] += mass  # one target per row: no repeated index to accumulate


def evidence_gates(p: np.ndarray, evidence, rows: slice, rules: AssignmentRules) -> np.ndarray:
    """Label posteriors ``p`` (n, 6) of voxels ``rows`` after the structure evidence.

    What a radiologist reads first decides (:class:`~.evidence.TissueEvidence`):

    1. a voxel of a solid component (a thick dense structure that is not a vessel)
       is consolidation;
    2. a voxel of a thin dense tube in healthy lung is a vessel: healthy (inside a
       hazy or fibrotic region a vessel belongs to the region);
    3. a voxel of a low-attenuation region well above the noise baseline is
       emphysema, unless thin walls surround it (honeycomb cysts: fibrosis);
    4. fibrosis needs a net of thin walls around the voxel
       (``rules.fibrosis_wall``, more away from the pleura; on coarse grids thin
       structures of any shape with texture four times the noise, and only within
       ``rules.coarse_net_mm`` of the pleura; running in more than one direction,
       ``rules.fibrosis_max_coherence``), otherwise its mass
       goes to GGO (dense parenchyma) or healthy; with such a net and dense
       parenchyma a voxel that is not itself a thin structure (on a grid too coarse
       to resolve the net's cells: not a vessel) is fibrosis whatever its cluster;
    5. GGO needs the parenchyma around the voxel, dense structures left out,
       ``rules.ggo_margin_hu`` denser than healthy lung of its slice; much denser
       (``rules.ggo_upgrade_hu``), a voxel is GGO whatever its cluster, and so is a
       voxel that itself reads ``rules.ggo_margin_hu`` denser in such parenchyma (a
       small ground-glass nodule), in a volume (single slices cannot tell haze from
       the partial volume of a dome) whose grid resolves the lung's walls;
    6. emphysema mass outside low-attenuation regions, and consolidation mass
       outside solid components, go to healthy (or GGO where the parenchyma is dense);
    7. dense parenchyma in a thin band under the posterior pleura, or in a region
       lying mostly against tissue across the slice, without a net of walls
       (reticulation), is dependent density or partial volume: healthy, not GGO
       or fibrosis; so is lung deeper than ``rules.coarse_net_mm`` that, on a grid
       too coarse to resolve walls, reads as a net (the bronchi and vessels of the
       hila crowd there).
    """
    ev = evidence
    solid, vessel, thin = ev.solid[rows], ev.vessel[rows], ev.thin[rows]
    excess = ev.parenchyma_hu[rows] - ev.healthy_hu[rows]
    depth = np.clip((ev.pleura_mm[rows] - 10.0) / 20.0, 0.0, 1.0)
    wall_needed = rules.fibrosis_wall + (rules.fibrosis_wall_central - rules.fibrosis_wall) * depth
    # a net of walls: resolved as thin non-tubular structures or, where the grid is too
    # coarse to resolve them (the walls of cysts read as tubes), as thin structures of any
    # shape with texture far above noise
    walls = ev.wall_fraction[rows] >= wall_needed
    if not ev.walls_resolved:
        walls |= (ev.thin_fraction[rows] >= 1.5 * wall_needed) \
            & (ev.texture_hu[rows] >= 4.0 * ev.noise_hu)
    if ev.wall_coherence is not None:
        # a net, not one line or sheet
        walls &= ev.wall_coherence[rows] < rules.fibrosis_max_coherence
    emph = ev.emphysema[rows]
    H, G, F, E, C = (int(Tissue.HEALTHY), int(Tissue.GGO), int(Tissue.FIBROSIS),
                     int(Tissue.EMPHYSEMA), int(Tissue.CONSOLIDATION))
    # honeycombing: low attenuation between walls, resolved (thin dense structures) or,
    # only on grids too coarse to resolve them, as texture far above the noise (where
    # they are resolved, the lung between the holes of an emphysematous region has that
    # texture too: air beside lung)
    cysts = ev.thin_fraction[rows] >= wall_needed
    if not ev.walls_resolved:
        cysts |= ev.texture_hu[rows] >= max(150.0, 3.0 * ev.noise_hu)
        # what stands in for walls on such a grid is read in the subpleural lung only;
        # deeper, such crowding of thin structures is the bronchi and vessels of the hila
        deep = ev.pleura_mm[rows] > rules.coarse_net_mm
        crowded = deep & walls
        walls &= ~deep
        cysts &= ~deep
    else:
        crowded = None
    dense_par = excess >= rules.ggo_margin_hu
    # a vessel in healthy lung is healthy; in a hazy or fibrotic region it belongs to it
    vessel_in_healthy = vessel & ~dense_par
    fallback = np.where(dense_par & ~vessel, G, H)
    all_lung = (H, G, F, E, C)
    p = p.copy()
    # weak gates first: a cluster name without the structure behind it
    _move(p, ~emph, (E,), H)
    _move(p, ~solid, (C,), fallback)
    _move(p, ~walls, (F,), fallback)
    _move(p, ~dense_par, (G,), H)
    # strong evidence, whatever the cluster
    # (where the grid resolves the cells of the net, its thin voxels keep their cluster's
    # name; on a coarser grid every dense voxel of the net blurs walls and cells together)
    net = ~thin if ev.cells_resolved else ~vessel
    _move(p, ~solid & net & walls & (excess >= rules.ggo_margin_hu / 2), (H, G), F)
    haze = excess >= rules.ggo_upgrade_hu
    if ev.voxel_hu is not None and ev.walls_resolved and ev.partial_volume is not None:
        # a voxel that itself reads as haze in hazy parenchyma is GGO too (a small
        # ground-glass nodule: too few voxels for a cluster of its own); not on a grid too
        # coarse to resolve the lung's fine structure (blurred vessels lift both), nor on a
        # single slice, which cannot tell haze from the partial volume of the diaphragm's or
        # the heart's dome (the slices above and below show them): there the cluster decides
        haze |= dense_par & (ev.voxel_hu[rows] - ev.healthy_hu[rows] >= rules.ggo_margin_hu)
    _move(p, ~solid & ~thin & ~walls & haze, (H,), G)
    # (a textured fibrosis cluster keeps low-attenuation voxels: honeycomb cysts whose
    # walls the grid is too coarse to resolve)
    _move(p, emph & ~solid & ~cysts, (H, G, C), E)
    _move(p, emph & ~solid & cysts, all_lung, F)
    _move(p, vessel_in_healthy & ~solid, all_lung, H)
    for explained in (ev.dependent, ev.partial_volume):
        if explained is not None:
            _move(p, explained[rows] & ~solid & ~emph & ~walls, (G, F), H)
    if crowded is not None:
        _move(p, crowded & ~solid & ~emph, (G, F), H)
    _move(p, solid, all_lung, C)
    return p
