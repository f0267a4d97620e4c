"""The web process never imports TensorFlow: its whole path (pages, upload, enqueue, export)
runs in a fresh interpreter, which must end without tensorflow or keras in sys.modules."""

import textwrap

from tests.webprocess import run_as_web_process

WEB_PROCESS = textwrap.dedent(
    """
    import io, os, sys
    os.environ["DJANGO_SETTINGS_MODULE"] = "brainscan.settings.test"
    import django
    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment
    setup_test_environment()
    call_command("migrate", verbosity=0)

    import brainscan.urls, brainscan.wsgi  # noqa: F401
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client
    from PIL import Image
    from cases.models import Case, Membership, Team

    assert Client().get("/accounts/login/").status_code == 200
    user = get_user_model().objects.create_user("web", password="x" * 16)
    Membership.objects.create(user=user, team=Team.objects.create(name="T"))
    client = Client()
    client.force_login(user)
    team = Team.objects.get().pk
    assert client.post("/cases/new/", {"team": team}).status_code == 302
    case = Case.objects.get()
    jpeg = io.BytesIO()
    Image.new("L", (64, 64), 90).save(jpeg, format="JPEG")
    upload = client.post(
        f"/cases/{case.pk}/scans/",
        {"files": [SimpleUploadedFile("a.jpg", jpeg.getvalue())]},
        HTTP_X_REQUESTED_WITH="XMLHttpRequest",
    )
    assert upload.status_code == 201, upload.content
    pages = ["/cases/", f"/cases/{case.pk}/", f"/cases/{case.pk}/scans/fragment/", "/models/", "/analytics/"]
    for url in pages:
        assert client.get(url).status_code == 200, url
    export = client.get("/cases/export.csv")
    assert case.pseudonym in b"".join(export.streaming_content).decode()

    assert any(os.scandir(os.environ["CELERY_BROKER_DIR"] + "/queue")), "the upload was not enqueued"
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"tensorflow", "keras"})
    print("HEAVY", heavy)
    sys.exit(1 if heavy else 0)
    """
)


def test_web_process_never_imports_tensorflow(tmp_path):
    completed = run_as_web_process(WEB_PROCESS, tmp_path=tmp_path, timeout=180)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "HEAVY []" in completed.stdout
