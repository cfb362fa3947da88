import numpy as np

from diffseglung_core.display import display_geometry, volume_from_geometry
from diffseglung_core.volume import CTVolume, ScanSource


def test_display_geometry_places_voxels_in_spl_world():
    vol = CTVolume.from_array(np.zeros((4, 5, 6)), spacing=(2.0, 0.5, 0.7), origin=(10.0, -20.0, 30.0))
    scale, translate = display_geometry(vol)
    assert scale == (2.0, 0.5, 0.7)
    # world (S, P, L) of voxel 0 is (S, -A, -R) of the RAS origin
    assert translate == (30.0, 20.0, -10.0)
    # any voxel: napari world = index * scale + translate equals the affine mapped to (S, P, L)
    idx = np.array([3, 2, 5])
    ras = vol.affine @ np.r_[idx, 1.0]
    assert np.allclose(idx * scale + translate, [ras[2], -ras[1], -ras[0]])


def test_volume_from_geometry_inverts_display_geometry():
    vol = CTVolume.from_array(np.zeros((4, 5, 6)), spacing=(2.0, 0.5, 0.7), origin=(10.0, -20.0, 30.0),
                              source=ScanSource(path="x.nii", format="nifti"))
    scale, translate = display_geometry(vol)
    rebuilt = volume_from_geometry((4, 5, 6), scale, translate)
    assert np.allclose(rebuilt.affine, vol.affine)
    assert rebuilt.hu.strides == (0, 0, 0)  # geometry only, no memory
    assert volume_from_geometry((2, 3, 4)).spacing == (1.0, 1.0, 1.0)
