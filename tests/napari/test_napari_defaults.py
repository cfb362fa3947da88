"""The command line and the napari widgets start from the same engine settings."""

from __future__ import annotations

import pytest

from diffseglung_core.cli import build_parser
from diffseglung_core.cli import demo as demo_cmd
from diffseglung_core.cli import segment as segment_cmd
from diffseglung_core.cli._options import options_from_args
from diffseglung_core.segment.options import RefineOptions, SegmentOptions
from napari_diffseglung._widgets.export import ExportWidget
from napari_diffseglung._widgets.segment import SegmentWidget

pytestmark = pytest.mark.gui


def test_cli_and_napari_defaults_are_the_segment_options_defaults(make_napari_viewer):
    parser = build_parser()
    cli = options_from_args(SegmentOptions, parser.parse_args(["segment", "ct.nii.gz", "-o", "x"]),
                            segment_cmd.OPTIONS)
    demo = options_from_args(SegmentOptions, parser.parse_args(["demo", "out"]), demo_cmd.OPTIONS)
    viewer = make_napari_viewer()
    napari = SegmentWidget(viewer).options()
    assert cli == napari == demo == SegmentOptions()
    assert (napari.k, napari.features) == (8, "auto")
    assert ExportWidget(viewer).refine_options() == RefineOptions()


def test_cli_and_napari_offer_the_same_choices(make_napari_viewer):
    widget = SegmentWidget(make_napari_viewer())
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["segment"]
    cli = {a.dest: tuple(a.choices) for a in sub._actions if a.choices}
    for name in ("features", "device"):
        box = widget.form.widgets[name]
        assert tuple(box.itemText(i) for i in range(box.count())) == cli[name]
