"""Rendering the analytics pages (and computing their statistics) never imports TensorFlow."""

import json
import textwrap

from tests.webprocess import run_as_web_process

RENDER_PAGES = textwrap.dedent(
    """
    import json, sys
    import django
    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment
    setup_test_environment()
    call_command("migrate", verbosity=0)

    from django.contrib.auth import get_user_model
    from django.test import Client
    from analytics.importer import import_folder
    from analytics.stats import compute_dataset_stats
    from cases.models import Case, Membership, Scan, Team
    from inference.models import Review
    from inference.models import ModelVersion, Prediction

    folder, card = sys.argv[1], json.loads(sys.argv[2])
    dataset = import_folder(folder, "small").dataset
    compute_dataset_stats(dataset.pk)
    version = ModelVersion.objects.create(name="bt", version="v1", task="brain-tumour", path="bt/v1",
                                          classes=card["classes"], card=card, is_active=True)
    user = get_user_model().objects.create_user("web", password="x" * 16)
    team = Team.objects.create(name="T")
    Membership.objects.create(user=user, team=team)
    case = Case.objects.create(team=team, created_by=user)
    scan = Scan.objects.create(case=case, image="x.png", sha256="0" * 64, width=1, height=1, uploaded_by=user)
    prediction = Prediction.objects.create(scan=scan, model_version=version, label="glioma", confidence=0.9,
                                           latency_ms=1.0)
    Review.objects.create(prediction=prediction, reviewer=user, decision="confirmed", label="glioma")

    client = Client()
    client.force_login(user)
    pages = ["/analytics/", f"/analytics/datasets/{dataset.pk}/", f"/analytics/models/{version.pk}/",
             "/analytics/field/", f"/analytics/datasets/{dataset.pk}/files/montage-glioma.png"]
    for url in pages:
        assert client.get(url).status_code == 200, url
    assert client.post(f"/analytics/datasets/{dataset.pk}/montage/", {"label": "notumor"}).status_code == 302
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"tensorflow", "keras"})
    print("HEAVY", heavy)
    sys.exit(1 if heavy else 0)
    """
)


def test_analytics_pages_never_import_tensorflow(tmp_path, small_folder, card):
    completed = run_as_web_process(
        RENDER_PAGES,
        str(small_folder),
        json.dumps(card),
        tmp_path=tmp_path / "broker",
        DJANGO_SETTINGS_MODULE="brainscan.settings.test",
        MEDIA_ROOT=str(tmp_path / "media"),
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "HEAVY []" in completed.stdout
