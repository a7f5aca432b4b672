"""The synthetic try-on world: persons, product garments and the ground truth no real dataset has.

Persons are articulated 2D figures; garments are flat product photos on white. A worn garment is
its product photo pulled onto the body by a body-driven, piecewise warp (a torso frame whose width
follows the body, sleeves and trouser legs that follow their limb segments, a sinusoidal fit
term), rendered by backward mapping, so the true warp of every visible garment pixel is known.
That warp is deliberately not a thin-plate spline. Only numpy and OpenCV are used.

Modules: geometry (design frame, palettes, pixel grids), bodies (persons and keypoints), garments
(product photos), rendering (a garment worn by a body, with its true warp), world (the dataset on disk).
"""
from viton_tf.data.synthetic.world import FOLDERS, VERSION, count_test_pairs, swapped_garment, write_world

__all__ = ["FOLDERS", "VERSION", "count_test_pairs", "swapped_garment", "write_world"]
