"""Access matrix: owner, teammate, outsider, steward and anonymous on every view."""

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from cases.models import Case, hash_patient_reference
from inference.models import Review
from tests.factories import ModelVersionFactory, PredictionFactory, ScanFactory, png_bytes

pytestmark = pytest.mark.django_db

ROLES = ["owner", "teammate", "outsider", "steward", "anonymous"]


@pytest.fixture
def objects(case):
    prediction = PredictionFactory(scan=ScanFactory(case=case))
    prediction.explanation.save("heat.png", ContentFile(png_bytes()))
    return {"case": case, "scan": prediction.scan, "prediction": prediction}


@pytest.fixture
def as_role(request, client_for):
    def make(role):
        user = None if role == "anonymous" else request.getfixturevalue(role)
        return client_for(user)

    return make


# (name, method, url builder, expected status per role: owner, teammate, outsider, steward, anonymous)
CASE_VIEWS = [
    ("detail", "get", lambda o: reverse("cases:detail", args=[o["case"].pk]), [200, 200, 404, 200, 302]),
    (
        "fragment",
        "get",
        lambda o: reverse("cases:scans_fragment", args=[o["case"].pk]),
        [200, 200, 404, 200, 302],
    ),
    (
        "scan image",
        "get",
        lambda o: reverse("cases:scan_image", args=[o["scan"].pk]),
        [200, 200, 404, 200, 302],
    ),
    (
        "explanation",
        "get",
        lambda o: reverse("cases:explanation_image", args=[o["prediction"].pk]),
        [200, 200, 404, 200, 302],
    ),
    ("update", "post", lambda o: reverse("cases:update", args=[o["case"].pk]), [302, 302, 404, 302, 302]),
    (
        "review",
        "post",
        lambda o: reverse("cases:review", args=[o["prediction"].pk]),
        [302, 302, 404, 302, 302],
    ),
    ("upload", "post", lambda o: reverse("cases:upload", args=[o["case"].pk]), [400, 400, 404, 400, 302]),
]


@pytest.mark.parametrize("role_index,role", list(enumerate(ROLES)))
@pytest.mark.parametrize("name,method,url,expected", CASE_VIEWS, ids=[v[0] for v in CASE_VIEWS])
def test_case_views_answer_each_role(objects, as_role, role_index, role, name, method, url, expected):
    client = as_role(role)
    data = {"status": "open", "notes": "", f"p{objects['prediction'].pk}-label": "glioma"}
    response = getattr(client, method)(url(objects), data if method == "post" else None)
    assert response.status_code == expected[role_index], f"{role} on {name}"
    if role == "anonymous":
        assert response["Location"].startswith(reverse("login"))


def test_outsider_gets_404_and_changes_nothing(objects, outsider, client_for):
    client = client_for(outsider)
    client.post(reverse("cases:update", args=[objects["case"].pk]), {"status": "closed", "notes": "x"})
    client.post(
        reverse("cases:review", args=[objects["prediction"].pk]),
        {f"p{objects['prediction'].pk}-label": "notumor"},
    )
    objects["case"].refresh_from_db()
    assert objects["case"].status == Case.Status.OPEN
    assert not Review.objects.exists()


@pytest.mark.parametrize("role", ROLES)
def test_case_list_shows_only_visible_cases(objects, as_role, role):
    response = as_role(role).get(reverse("cases:list"))
    if role == "anonymous":
        assert response.status_code == 302
        return
    assert response.status_code == 200
    visible = objects["case"].pseudonym in response.content.decode()
    assert visible == (role != "outsider")


@pytest.mark.parametrize("role", ROLES)
def test_export_contains_only_visible_cases(objects, as_role, role):
    response = as_role(role).get(reverse("cases:export"))
    if role == "anonymous":
        assert response.status_code == 302
        return
    body = b"".join(response.streaming_content).decode()
    assert (objects["case"].pseudonym in body) == (role != "outsider")


@pytest.mark.parametrize("role,expected", [("owner", 200), ("steward", 200), ("anonymous", 302)])
def test_case_create_page(team, as_role, role, expected):
    assert as_role(role).get(reverse("cases:create")).status_code == expected


@pytest.mark.parametrize("role,expected", list(zip(ROLES, [403, 403, 403, 302, 302], strict=True)))
def test_only_steward_switches_model(db, as_role, role, expected):
    current = ModelVersionFactory(is_active=True)
    candidate = ModelVersionFactory()
    response = as_role(role).post(reverse("inference:activate", args=[candidate.pk]))
    assert response.status_code == expected
    candidate.refresh_from_db()
    current.refresh_from_db()
    assert candidate.is_active == (role == "steward")
    assert current.is_active == (role != "steward")


@pytest.mark.parametrize("role,expected", list(zip(ROLES, [200, 200, 200, 200, 302], strict=True)))
def test_model_and_analytics_pages(db, as_role, role, expected):
    client = as_role(role)
    assert client.get(reverse("inference:list")).status_code == expected
    assert client.get(reverse("analytics:index")).status_code == expected


def test_stored_scan_files_have_no_public_url(objects, owner_client):
    path = "/media/" + objects["scan"].image.name
    assert owner_client.get(path).status_code == 404


@pytest.mark.parametrize("role,expected", list(zip(ROLES, [404, 404, 404, 200, 302], strict=True)))
def test_only_stewards_manage_users_in_admin(db, as_role, role, expected):
    response = as_role(role).get(reverse("admin:auth_user_changelist"))
    assert response.status_code == expected


@pytest.mark.parametrize("role,expected", list(zip(ROLES, [302, 302, 302, 302, 302], strict=True)))
def test_find_patient_redirects_to_a_hash_only_url(db, as_role, role, expected):
    response = as_role(role).post(reverse("cases:find_patient"), {"patient_reference": "MRN 555"})
    assert response.status_code == expected
    # Only the keyed hash reaches the URL. (Not a "555" substring check: the hash is hex and
    # the key is random per machine, so it may contain "555" by chance.)
    assert "MRN" not in response["Location"]
    if role != "anonymous":
        assert response["Location"] == f"{reverse('cases:list')}?patient={hash_patient_reference('MRN 555')}"
    if role == "anonymous":
        assert response["Location"].startswith(reverse("login"))


def test_a_pacs_account_sees_no_case_even_with_a_session(objects, client_for, pacs_account):
    # It cannot log in (tests/cases/test_auth.py); were a session forced, its team's cases stay shut.
    client = client_for(pacs_account)
    assert client.get(reverse("cases:detail", args=[objects["case"].pk])).status_code == 404
    assert client.get(reverse("cases:scan_image", args=[objects["scan"].pk])).status_code == 404
    assert objects["case"].pseudonym not in client.get(reverse("cases:list")).content.decode()
