"""Qt inputs built from the fields of an options dataclass (defaults, choices, ranges).

The same dataclasses build the command-line arguments
(``diffseglung_core.cli._options``), so both start from the same defaults.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, Optional, Sequence

from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLineEdit, QSpinBox, QWidget

from diffseglung_core.segment.options import option_choices


class OptionForm:
    """One input per field of a dataclass, laid out in a :class:`QFormLayout`.

    Parameters
    ----------
    cls : type
        A dataclass whose fields have defaults and ``help``, ``choices``,
        ``range``, ``step`` or ``auto`` metadata.
    names : sequence of str
        The fields shown, in order (default: every field).
    labels : dict, optional
        Row labels by field name (default: the name with spaces).

    Attributes
    ----------
    widgets : dict
        Field name -> its input (QComboBox, QCheckBox, QSpinBox, QDoubleSpinBox, QLineEdit).
    layout : QFormLayout
    """

    def __init__(self, cls: type, names: Optional[Sequence[str]] = None, *,
                 labels: Optional[dict] = None, layout: Optional[QFormLayout] = None):
        self.cls = cls
        chosen = [f for f in fields(cls) if names is None or f.name in names]
        if names is not None:
            chosen.sort(key=lambda f: list(names).index(f.name))
        self.fields = {f.name: f for f in chosen}
        self.widgets: dict[str, QWidget] = {}
        self.layout = layout if layout is not None else QFormLayout()
        for name, f in self.fields.items():
            widget = self._make(name, f)
            if f.metadata.get("help"):
                widget.setToolTip(f.metadata["help"])
            self.widgets[name] = widget
            self.layout.addRow((labels or {}).get(name, name.replace("_", " ")), widget)

    def _make(self, name: str, f) -> QWidget:
        default = f.default if f.default is not MISSING else None
        meta = f.metadata
        choices = option_choices(self.cls, name)
        if choices:
            box = QComboBox()
            box.addItems(list(choices))
            box.setCurrentText(str(default))
            return box
        if isinstance(default, bool):
            check = QCheckBox(meta.get("help", ""))
            check.setChecked(default)
            return check
        if isinstance(default, tuple):
            return QLineEdit(", ".join(str(v) for v in default))
        lo, hi = meta.get("range", (None, None))
        if isinstance(default, int):
            spin = QSpinBox()
            spin.setRange(int(lo), int(hi))
        else:
            spin = QDoubleSpinBox()
            spin.setDecimals(3)
            spin.setRange(float(lo), float(hi))
        spin.setSingleStep(meta.get("step", 1))
        if meta.get("auto"):
            spin.setSpecialValueText("auto")
        spin.setValue(lo if default is None else default)
        return spin

    def value(self, name: str) -> Any:
        """The value of field ``name`` shown (None for "auto").

        Raises
        ------
        ValueError
            A tuple field holds text that is not numbers separated by commas.
        """
        widget, f = self.widgets[name], self.fields[name]
        if isinstance(widget, QComboBox):
            return widget.currentText()
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if isinstance(widget, QLineEdit):
            text = widget.text().replace(";", ",")
            kind = type(f.default[0]) if f.default else str
            return tuple(kind(v) for v in text.split(",") if v.strip())
        if f.metadata.get("auto") and widget.value() == widget.minimum():
            return None
        if isinstance(widget, QDoubleSpinBox) and f.default is not None \
                and widget.value() == round(f.default, widget.decimals()):
            return f.default  # the default as shown (1/6 is shown as 0.167)
        return widget.value()

    def values(self) -> dict[str, Any]:
        """Every field shown, by name."""
        return {name: self.value(name) for name in self.widgets}
