"""Pull a study from the configured PACS into a case: manage.py pull_study UID --team NAME."""

import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from cases import pacs_import, pacs_pull
from cases.models import Case, CaseClosed, StudyImport, Team
from cases.pacs import PacsUnavailable


class Command(BaseCommand):
    help = (
        "Fetch every series of a study from the PACS (PACS_URL) by its StudyInstanceUID and store it "
        "like an upload: into --case, or the case of the team that already holds the study, or a new one."
    )

    def add_arguments(self, parser):
        parser.add_argument("study_uid", help="The study's StudyInstanceUID in the PACS")
        parser.add_argument("--team", required=True, help="The team whose case receives it")
        parser.add_argument(
            "--user", help="Pull as this member of the team (default: the team's PACS account)"
        )
        parser.add_argument("--case", type=int, help="Into this case of the team (its id)")
        parser.add_argument(
            "--attempts",
            type=int,
            default=pacs_pull.PULL_ATTEMPTS,
            help="Tries in all while the PACS is down or slow, waiting longer each time",
        )
        parser.add_argument("--queue", action="store_true", help="Hand the pull to a worker instead")

    def handle(self, *args, **options):
        team = Team.objects.filter(name=options["team"]).first()
        if team is None:
            raise CommandError(f"No team is named {options['team']!r}.")
        user = self._user(team, options["user"])
        case = None
        if options["case"] is not None:
            case = Case.objects.filter(pk=options["case"], team=team).first()
            if case is None:
                raise CommandError(f"Team {team.name} has no case {options['case']}.")
        try:
            record = pacs_pull.request_pull(
                options["study_uid"], team=team, user=user, case=case, publish=options["queue"]
            )
        except (ValueError, PacsUnavailable, CaseClosed) as error:
            raise CommandError(str(error)) from None
        if options["queue"]:
            self.stdout.write(f"Pull {record.pk} queued; follow it at /api/v1/pulls/{record.pk}/.")
            return
        attempts = max(1, options["attempts"])
        for attempt in range(attempts):
            try:
                done = pacs_pull.run_pull(record.pk, last_attempt=attempt == attempts - 1)
                # None: no longer pending (a worker took it, or it was given up): as the row says.
                record = done or StudyImport.objects.get(pk=record.pk)
                break
            except pacs_pull.PullDeferred as deferred:
                wait = pacs_pull.retry_wait(attempt)
                self.stderr.write(f"The PACS is unavailable ({deferred}); trying again in {wait:.0f} s.")
                time.sleep(wait)
        if record.status != StudyImport.Status.DONE:
            raise CommandError(f"Pull {record.pk} failed: {record.reason}")
        self.stdout.write(
            f"Pulled {record.scan_count} new scan(s) into case {record.case.pseudonym} (id {record.case_id})."
        )

    def _user(self, team, username):
        if not username:
            return pacs_import.service_account(team)
        user = get_user_model().objects.filter(username=username, memberships__team=team).first()
        if user is None:
            raise CommandError(f"{username!r} is not a member of team {team.name}.")
        return user
