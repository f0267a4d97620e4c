"""An lgg-flair patient's slices as DICOM files and zip archives, for the series upload tests."""

import io
import zipfile

import pydicom

from tests.conftest import SHARED_DATASETS

LGG_FLAIR = SHARED_DATASETS / "lgg-flair"
# 20 slices, 6 of them with tumour: a whole small volume.
PATIENT = "TCGA_CS_4942"


def as_file(dataset) -> bytes:
    out = io.BytesIO()
    pydicom.dcmwrite(out, dataset, enforce_file_format=True)
    return out.getvalue()


def zipped(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()
