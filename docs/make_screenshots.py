"""Render screenshots of the napari plugin in use into ``docs/images/screenshot_*.png``.

A real, shown napari window (it needs an X server and OpenGL: on a headless
machine run it under Xvfb with the xcb platform, which renders through Mesa)::

    xvfb-run -a -s "-screen 0 1920x1080x24" env QT_QPA_PLATFORM=xcb \\
        .venv/bin/python docs/make_screenshots.py [--scan DICOM_FOLDER]

1. ``screenshot_load.png``: the A0001 chest CT (DICOM) opened in the Load CT
   widget, with its weight-free lung mask (skipped when the scan is absent).
2. ``screenshot_segment.png``: a synthetic phantom segmented by the Segment
   widget; the cluster table with its label dropdowns beside it.
3. ``screenshot_volumes.png``: the same result with the class volume table and
   bar chart, and the Refine and export widget.
4. ``screenshot_a0001_segment.png``: the A0001 scan segmented (density features).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
DEFAULT_SCAN = ROOT.parent / "shared" / "data" / "lung-pet-ct-dx-A0001" / "dicom"


def wait(job, timeout: float = 900.0) -> None:
    """Let Qt run until a background job has ended."""
    from qtpy.QtWidgets import QApplication

    start = time.time()
    while not job.ended:
        QApplication.processEvents()
        time.sleep(0.02)
        if time.time() - start > timeout:
            raise TimeoutError("background job did not finish")
    if job.outcome != "done":
        raise RuntimeError(f"job ended with {job.outcome}")


def settle(viewer, seconds: float = 0.5) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def shoot(viewer, name: str) -> Path:
    from PIL import Image

    settle(viewer)
    path = IMAGES / name
    rgba = viewer.screenshot(canvas_only=False, flash=False)
    Image.fromarray(rgba[..., :3]).save(path)
    print(f"wrote {path} {rgba.shape[1]}x{rgba.shape[0]}")
    return path


def busiest_slice(labels: np.ndarray) -> int:
    """The axial slice showing most pathology classes (labels 2..5), then most pathology voxels."""
    kinds = np.stack([(labels == c).any(axis=(1, 2)) for c in range(2, 6)]).sum(0)
    amount = ((labels >= 2) & (labels <= 5)).sum(axis=(1, 2))
    return int(np.lexsort((amount, kinds))[-1])


def widen_docks(viewer, width: int = 560) -> None:
    """Make the right-hand docks wide enough for their tables."""
    from qtpy.QtCore import Qt

    docks = list(viewer.window._wrapped_dock_widgets.values())  # the QDockWidgets
    viewer.window._qt_window.resizeDocks(docks, [width] * len(docks), Qt.Orientation.Horizontal)


def new_viewer():
    import napari

    viewer = napari.Viewer(show=True, title="napari-diffseglung")
    viewer.window._qt_window.resize(1700, 1000)
    return viewer


def phantom_shots(shape) -> None:
    from diffseglung_core.phantom import make_phantom
    from napari_diffseglung._layers import image_layer_data
    from napari_diffseglung._widgets.clusters import ClustersWidget
    from napari_diffseglung._widgets.export import ExportWidget
    from napari_diffseglung._widgets.segment import SegmentWidget
    from napari_diffseglung._widgets.volumes import VolumesWidget

    viewer = new_viewer()
    phantom = make_phantom(shape, seed=0)
    data, kwargs, _ = image_layer_data(phantom.volume, "phantom")
    viewer.add_image(data, **kwargs)
    segment = SegmentWidget(viewer)
    clusters = ClustersWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment", area="right")
    viewer.window.add_dock_widget(clusters, name="Clusters and label mapping", area="right")
    segment.features_combo.setCurrentText("radiomics")
    segment.k_spin.setValue(6)
    wait(segment.run())
    layer = viewer.layers["phantom segmentation"]
    viewer.dims.set_current_step(0, busiest_slice(phantom.labels))
    viewer.reset_view()
    widen_docks(viewer)
    shoot(viewer, "screenshot_segment.png")

    viewer.window.remove_dock_widget("all")
    volumes = VolumesWidget(viewer)
    export = ExportWidget(viewer)
    viewer.window.add_dock_widget(volumes, name="Class volumes", area="right")
    viewer.window.add_dock_widget(export, name="Refine and export", area="right")
    volumes.labels_combo.set_layer(layer)
    export.labels_combo.set_layer(layer)
    export.preview()
    viewer.layers["phantom segmentation refine preview"].visible = False
    widen_docks(viewer, 460)
    shoot(viewer, "screenshot_volumes.png")
    viewer.close()


def a0001_shots(scan: Path, segment_it: bool) -> None:
    from napari_diffseglung._widgets.load import LoadCTWidget
    from napari_diffseglung._widgets.segment import SegmentWidget
    from napari_diffseglung._widgets.volumes import VolumesWidget

    viewer = new_viewer()
    load = LoadCTWidget(viewer)
    viewer.window.add_dock_widget(load, name="Load CT", area="right")
    load.set_path(scan)
    wait(load.load())
    wait(load.compute_mask())
    ct = viewer.layers[-2]
    mask = viewer.layers[-1]
    z = int(np.argmax((np.asarray(mask.data) > 0).sum(axis=(1, 2))))
    viewer.dims.set_current_step(0, z)
    viewer.reset_view()
    shoot(viewer, "screenshot_load.png")
    if not segment_it:
        viewer.close()
        return
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment", area="right")
    segment.mask_combo.set_layer(mask)
    segment.features_combo.setCurrentText("density")
    wait(segment.run())
    mask.visible = False
    volumes = VolumesWidget(viewer)
    viewer.window.add_dock_widget(volumes, name="Class volumes", area="right")
    volumes.labels_combo.set_layer(viewer.layers[f"{ct.name} segmentation"])
    shoot(viewer, "screenshot_a0001_segment.png")
    viewer.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", type=Path, default=DEFAULT_SCAN, help="A0001 DICOM folder")
    parser.add_argument("--phantom-shape", type=int, nargs=3, default=(32, 112, 112))
    parser.add_argument("--no-a0001-segment", action="store_true",
                        help="only load the real scan and its lung mask (faster)")
    parser.add_argument("--only", choices=("phantom", "a0001"), help="make one set of screenshots")
    args = parser.parse_args(argv)
    IMAGES.mkdir(parents=True, exist_ok=True)
    if args.only != "a0001":
        phantom_shots(tuple(args.phantom_shape))
    if args.only == "phantom":
        return 0
    if args.scan.is_dir():
        a0001_shots(args.scan, not args.no_a0001_segment)
    else:
        print(f"{args.scan} not found: skipping the real-scan screenshots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
