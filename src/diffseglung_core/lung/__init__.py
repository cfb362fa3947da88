"""Weight-free lung mask: the lungs as a radiologist finds them, diseased parts included.

:func:`compute_lung_mask` returns a ``uint8`` label map on the CT grid: 0
outside the lungs, :data:`RIGHT_LUNG` (1) and :data:`LEFT_LUNG` (2).
:func:`segment_lungs` returns it with what else was found (pleural effusion,
pneumothorax, the airways, gas that is not lung) as a :class:`LungSegmentation`. No trained
weights; every size is in mm, so the same settings serve 0.5 mm and 5 mm
slices, one slice or hundreds.

The lungs are found from the aerated lung outwards:

- :mod:`.body`: the body and the air outside it (padding of the field of view
  included, whatever its value);
- :mod:`.airways`: the trachea and main bronchi, tracked from the top;
- :mod:`.components`: which air-filled regions are lung (the bronchi open into
  them, or they hold parenchyma) and which are bowel or stomach gas; left/right;
- :mod:`.cavity`: ground glass, dense lung between the aerated lung and the rib
  cage (consolidation, atelectasis) along rays;
- :mod:`.dense_lung`: those rays towards the ribs, the back and the middle,
  and dense lung between aerated parts of a lung through the slices;
- :mod:`.effusion`, :mod:`.pneumothorax`: pleural effusion and free pleural air,
  reported and left out of the lung (:mod:`.pleural`: the shape they share);
- :mod:`.skeleton`, :mod:`.aorta`: the rib cage, the vertebral column and the
  descending aorta, which bound dense lung at the back and the middle;
- :mod:`.border`, :mod:`.morphology`, :mod:`.coarse`: closings for masses and
  small dents, costal pockets, holes and the diaphragm dome, on a coarse grid
  where it is heavy;
- :mod:`.maps`: label values, volumes and grid checks.
"""

from .maps import LEFT_LUNG, RIGHT_LUNG, binary_lung, check_mask_grid, lung_volumes_ml
from .mask import LungSegmentation, compute_lung_mask, segment_lungs, segment_scan_lungs

__all__ = [
    "RIGHT_LUNG",
    "LEFT_LUNG",
    "LungSegmentation",
    "segment_lungs",
    "segment_scan_lungs",
    "compute_lung_mask",
    "binary_lung",
    "check_mask_grid",
    "lung_volumes_ml",
]
