"""Screenshots of the one-panel workflow on the real A0001 series: ``docs/images/panel_*.png``.

A real, shown napari window of 1920 x 1080 (an X server and OpenGL are
needed: on a headless machine run it under Xvfb with the xcb platform)::

    xvfb-run -a -s "-screen 0 1920x1080x24" env QT_QPA_PLATFORM=xcb \\
        .venv/bin/python docs/make_panel_screenshots.py [--scan DICOM_FOLDER]

1. ``panel_load.png``: the *Load* tab, A0001 read from DICOM with its lung mask.
2. ``panel_clusters.png``: after *Segment*, the *Clusters* tab (cluster table,
   label per cluster) and the status line of a remap (undone afterwards with
   the layer's undo, checked to restore the labels exactly).
3. ``panel_object.png``: the *Object* tab: the mass clicked, its preview (the
   mass without the hilar vessels), before *Apply*.
4. ``panel_learn.png``: the *Learn* tab after *Next slice to check*, with the
   confidence layer (the result layer hidden).
5. ``panel_volumes.png``: the *Volumes* tab with right and left lung volumes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
DEFAULT_SCAN = ROOT.parent / "shared" / "data" / "lung-pet-ct-dx-A0001" / "dicom"


def settle(seconds: float = 0.6) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def wait(job, timeout: float = 900.0) -> None:
    start = time.time()
    while not job.ended:
        settle(0.05)
        if time.time() - start > timeout:
            raise TimeoutError("background job did not finish")
    if job.outcome != "done":
        raise RuntimeError(f"job ended with {job.outcome}")


def shoot(viewer, name: str) -> Path:
    from PIL import Image

    settle()
    path = IMAGES / name
    rgba = viewer.screenshot(canvas_only=False, flash=False)
    Image.fromarray(rgba[..., :3]).save(path)
    print(f"wrote {path} {rgba.shape[1]}x{rgba.shape[0]}")
    return path


def mass_seed(result) -> tuple:
    """The deepest voxel of the largest consolidation component (the tumour of A0001)."""
    from scipy import ndimage as ndi

    comp, _ = ndi.label(np.asarray(result.labels) == 5)
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    big = comp == int(sizes.argmax())
    depth = ndi.distance_transform_edt(big, sampling=result.spacing)
    return tuple(int(i) for i in np.unravel_index(depth.argmax(), big.shape))


def focus(viewer, layer, point, zoom: float) -> None:
    """Show ``point`` (data coordinates of ``layer``) ``zoom`` times closer than the whole scan."""
    viewer.dims.set_point(0, layer.data_to_world(point)[0])
    viewer.reset_view()
    world = layer.data_to_world(point)
    viewer.camera.center = tuple(world[-2:])
    viewer.camera.zoom = viewer.camera.zoom * zoom


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", type=Path, default=DEFAULT_SCAN, help="A0001 DICOM folder")
    args = parser.parse_args(argv)
    if not args.scan.is_dir():
        print(f"{args.scan} not found: nothing to do")
        return 1
    import napari
    from napari_diffseglung._widgets.panel import DiffSegLungPanel

    IMAGES.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True, title="napari-diffseglung")
    viewer.window._qt_window.showMaximized()
    viewer.window._qt_window.resize(1920, 1080)
    panel = DiffSegLungPanel(viewer)
    viewer.window.add_dock_widget(panel, name="DiffSegLung", area="right")
    settle()

    load = panel.show_step("Load")
    load.set_path(args.scan)
    wait(load.load())
    wait(load.compute_mask())
    ct = viewer.layers["A0001"] if "A0001" in viewer.layers else viewer.layers[0]
    mask = viewer.layers[f"{ct.name} lung mask"]
    z = int(np.argmax((np.asarray(mask.data) > 0).sum(axis=(1, 2))))
    viewer.dims.set_point(0, ct.data_to_world((z, 0, 0))[0])
    viewer.reset_view()
    shoot(viewer, "panel_load.png")

    segment = panel.show_step("Segment")
    wait(segment.run())  # the default engine (weight-free, radiomics features)
    result_layer = viewer.layers[f"{ct.name} segmentation"]
    result = result_layer.metadata["diffseglung_result"]
    clusters = panel.show_step("Clusters")
    seed = mass_seed(result)
    viewer.dims.set_point(0, ct.data_to_world(seed)[0])
    viewer.reset_view()
    # a remap of the smallest healthy cluster to ground glass, its message, then Ctrl+Z
    healthy = [k for k, lab in enumerate(result.mapping.labels) if lab == 1]
    small = min(healthy, key=lambda k: result.mapping.stats[k]["n_voxels"])
    before = np.array(result_layer.data, copy=True)
    box = clusters.label_box(small)
    box.setCurrentIndex(box.findData(2))
    wait(clusters.job)
    settle()
    shoot(viewer, "panel_clusters.png")
    print("remap:", clusters.status.text())
    result_layer.undo()
    settle()
    assert np.array_equal(result_layer.data, before), "Ctrl+Z did not restore the labels"
    print("after undo:", clusters.status.text())

    objects = panel.show_step("Object")
    objects.label_combo.setCurrentIndex(objects.label_combo.findData(5))
    objects.pick_btn.setChecked(True)
    objects.select_at(seed)
    focus(viewer, ct, seed, 2.5)
    shoot(viewer, "panel_object.png")
    objects.apply()
    objects.set_picking(False)

    learn = panel.show_step("Learn")
    learn.show_confidence()
    z = learn.go_to_next_slice()
    viewer.reset_view()
    result_layer.visible = False  # the CT and the low-confidence voxels alone
    shoot(viewer, "panel_learn.png")
    print("next slice to check:", z)

    result_layer.visible = True
    viewer.layers[f"{result_layer.name} confidence"].visible = False
    volumes = panel.show_step("Volumes")
    volumes.labels_combo.set_layer(result_layer)
    volumes.refresh()
    viewer.dims.set_point(0, ct.data_to_world(seed)[0])
    shoot(viewer, "panel_volumes.png")
    print("cluster status:", clusters.status.text())
    print("window", viewer.window._qt_window.size().width(), viewer.window._qt_window.size().height(),
          "panel minimum height", panel.minimumSizeHint().height())
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
