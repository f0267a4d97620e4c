"""The fixed lgg-flair patient split: whole patients, stable, every part with both labels."""

import pytest

from ml.patient_split import PARTS, assign_parts, load_split, part_of, part_of_slice, patient_hash

from .conftest import DATASETS

LGG_FLAIR = DATASETS / "lgg-flair"


def test_committed_split_is_what_the_rule_gives():
    split = load_split()
    assert assign_parts(split) == split


def test_split_is_about_60_20_20_and_every_site_reaches_the_held_out_parts():
    split = load_split()
    shares = {part: sum(q == part for q in split.values()) / len(split) for part in PARTS}
    assert shares["train"] == pytest.approx(0.6, abs=0.03)
    assert shares["val"] == pytest.approx(0.2, abs=0.03)
    assert shares["test"] == pytest.approx(0.2, abs=0.03)
    sites = {p.split("_")[1] for p in split}
    big_sites = [s for s in sites if sum(p.split("_")[1] == s for p in split) >= 5]
    for site in big_sites:
        assert {q for p, q in split.items() if p.split("_")[1] == site} == set(PARTS)


def test_assignment_depends_on_the_ids_not_their_order():
    patients = [f"TCGA_AA_{n:04d}" for n in range(20)] + [f"TCGA_BB_{n:04d}" for n in range(7)]
    assert assign_parts(patients) == assign_parts(list(reversed(patients)))
    assert assign_parts(patients) == assign_parts(patients * 2)


def test_another_key_gives_another_split():
    patients = [f"TCGA_AA_{n:04d}" for n in range(30)]
    assert patient_hash(patients[0]) != patient_hash(patients[0], key=b"other")
    assert assign_parts(patients) != assign_parts(patients, key=b"other")


def test_a_patient_listed_twice_is_refused(tmp_path):
    path = tmp_path / "split.json"
    path.write_text('{"patients": {"TCGA_CS_4941": "train", "TCGA_CS_4941": "test"}}')
    with pytest.raises(ValueError, match="TCGA_CS_4941"):
        load_split(path)


def test_a_slice_is_in_its_patients_part():
    split = load_split()
    assert part_of_slice("lgg-flair/no/TCGA_CS_4944_20010208_12.jpg") == split["TCGA_CS_4944"]
    with pytest.raises(ValueError, match="not named"):
        part_of_slice("br35h/yes/y12.jpg")


def test_unknown_patient_is_an_error():
    with pytest.raises(KeyError, match="not in the lgg-flair split"):
        part_of("TCGA_ZZ_0000")


def test_every_slice_of_a_patient_is_in_one_part_with_both_labels_in_each_part():
    if not LGG_FLAIR.is_dir():
        pytest.skip(f"lgg-flair not found under {DATASETS}")
    from ml.dicomseries import lgg_patients

    patients = lgg_patients(LGG_FLAIR)
    split = load_split()
    assert set(patients) == set(split)  # the file covers the dataset, nothing more
    labels = {part: set() for part in PARTS}
    for patient, slices in patients.items():
        labels[split[patient]] |= {s.tumour for s in slices}
    assert all(found == {True, False} for found in labels.values())
