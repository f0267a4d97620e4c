import io

import numpy as np
import pytest
from PIL import Image

from ml.preprocess import SIZE, ImageDecodeError, decode, head_box, preprocess


def _real(datasets, cls="glioma", index=0):
    return sorted((datasets / "brain-tumor-mri" / "Training" / cls).glob("*.jpg"))[index]


def test_output_shape_dtype_and_range(datasets):
    x = preprocess(_real(datasets))
    assert x.shape == (SIZE, SIZE, 1) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.std() > 0.05


def test_greyscale_and_rgb_copies_give_identical_arrays(datasets):
    grey = Image.open(_real(datasets, "meningioma", 3)).convert("L")
    assert np.array_equal(preprocess(grey), preprocess(grey.convert("RGB")))
    # and through encoded files, as uploads arrive
    a, b = io.BytesIO(), io.BytesIO()
    grey.save(a, "PNG")
    grey.convert("RGB").save(b, "PNG")
    assert np.array_equal(preprocess(a.getvalue()), preprocess(b.getvalue()))


def test_empty_borders_are_cropped_away(datasets):
    grey = np.asarray(Image.open(_real(datasets, "pituitary", 5)).convert("L"))
    padded = np.zeros((grey.shape[0] + 300, grey.shape[1] + 120), dtype=np.uint8)
    padded[200 : 200 + grey.shape[0], 40 : 40 + grey.shape[1]] = grey
    box = np.array(head_box(grey))
    shifted = np.array(head_box(padded)) - [200, 200, 40, 40]
    # Same head box; only the safety margin may reach past the original picture's edge.
    tolerance = 0.04 * max(grey.shape) + 2
    assert np.all(np.abs(box - shifted) <= tolerance), (box, shifted)
    assert box[1] - box[0] < grey.shape[0] or box[3] - box[2] < grey.shape[1]  # something was cropped


def test_sixteen_bit_input_is_windowed_to_eight_bit():
    ramp = (np.linspace(0, 4000, 200 * 200).reshape(200, 200)).astype(np.uint16)
    grey, colour = decode(ramp)
    assert grey.dtype == np.uint8 and grey.max() == 255 and grey.min() == 0 and colour == 0.0


def test_colour_pictures_report_colourfulness():
    red = Image.new("RGB", (64, 64), (200, 30, 30))
    assert decode(red)[1] > 50
    assert decode(red.convert("L").convert("RGB"))[1] == 0.0


def test_non_images_are_refused():
    with pytest.raises(ImageDecodeError):
        preprocess(b"this is not an image")


def test_a_dicom_slice_is_read_by_content_from_bytes_path_or_file(tmp_path):
    from ml.preprocess import dicom_pixels
    from tests.privacy.corpus import dicom_slice

    data = dicom_slice(photometric="MONOCHROME1", slope=2.5, intercept=-1024)
    path = tmp_path / "slice.png"  # the name says PNG; the content decides
    path.write_bytes(data)
    expected = decode(dicom_pixels(data))
    for source in (data, path, str(path), io.BytesIO(data)):
        grey, colour = decode(source)
        assert np.array_equal(grey, expected[0]) and colour == 0.0
    with pytest.raises(ImageDecodeError):
        decode(data[: len(data) // 2])  # truncated pixel data
