"""Forms for cases, their filters and reviews, and the login form."""

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import NON_FIELD_ERRORS
from django.db import transaction

from inference.models import Review
from ml import tasks

from . import worklist
from .models import AuditEvent, Case, retraction_reason
from .preferences import Preference, time_zone_choices
from .roles import PACS_GROUP, is_pacs_account


class CaseCreateForm(forms.ModelForm):
    patient_reference = forms.CharField(
        required=False,
        max_length=100,
        label="Patient reference (optional)",
        help_text="Stored only as a keyed hash; entering it again finds the patient's earlier cases.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    class Meta:
        model = Case
        fields = ["team", "task", "notes"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}
        help_texts = {
            "task": "Each scan is answered by this question's model; it can change until a scan is reviewed."
        }

    def __init__(self, *args, teams, **kwargs):
        super().__init__(*args, **kwargs)
        # Left out (an older client's form): the default question, as the API does.
        self.fields["task"].required = False
        self.fields["team"].queryset = teams
        if teams.count() == 1:
            self.fields["team"].initial = teams.first()
            self.fields["team"].widget = forms.HiddenInput()

    def save(self, created_by):
        """Open the case (Case.open, audited)."""
        data = self.cleaned_data
        task = data["task"] or tasks.DEFAULT
        return Case.open(created_by, data["team"], data["notes"], data["patient_reference"], task)


class CaseUpdateForm(forms.ModelForm):
    class Meta:
        model = Case
        fields = ["status", "task", "notes"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["task"].required = False
        self.fields["task"].help_text = "Can change until one of the case's scans is reviewed."

    def clean_task(self):
        # Left out: the question stays as it is.
        return self.cleaned_data["task"] or self.instance.task


class ScanRerunForm(forms.Form):
    task = forms.ChoiceField(choices=tasks.choices())
    move_case = forms.BooleanField(required=False)


class CaseFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Pseudonym")
    # The keyed hash, never the reference: filter URLs end up in access logs and browser history.
    patient = forms.RegexField(regex=r"^[0-9a-f]{64}$", required=False, widget=forms.HiddenInput())
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Case.Status.choices])
    flag = forms.ChoiceField(required=False, choices=[("", "Any flag"), *Case.Flag.choices])
    task = forms.ChoiceField(required=False, choices=[("", "Any question"), *tasks.choices()])
    created_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    created_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    # Field -> the lookup it filters on; an empty field filters nothing.
    LOOKUPS = {
        "patient": "patient_ref_hash",
        "status": "status",
        "flag": "flag",
        "task": "task",
        "created_from": "created_at__date__gte",
        "created_to": "created_at__date__lte",
    }

    def filter(self, queryset):
        if not self.is_valid():
            return queryset.none()
        data = self.cleaned_data
        if data["q"]:
            queryset = queryset.filter(pseudonym__icontains=data["q"].strip())
        return queryset.filter(**{lookup: data[name] for name, lookup in self.LOOKUPS.items() if data[name]})


class WorklistFilterForm(CaseFilterForm):
    """The case list's filters: the case filters and three quick ones, combinable with them."""

    unreviewed = forms.BooleanField(required=False, label="Unreviewed")
    suspected = forms.BooleanField(required=False, label="Suspected tumour")
    mine = forms.BooleanField(required=False, label="Mine", help_text="cases I opened or uploaded to")

    def filter(self, queryset, user=None):
        """``queryset`` annotated by cases.worklist.annotate (the unreviewed filter reads it)."""
        queryset = super().filter(queryset)
        if not self.is_valid():
            return queryset
        if self.cleaned_data["unreviewed"]:
            queryset = worklist.filter_unreviewed(queryset)
        if self.cleaned_data["suspected"]:
            queryset = queryset.filter(flag=Case.Flag.TUMOUR_SUSPECTED)
        if self.cleaned_data["mine"] and user is not None:
            queryset = worklist.filter_mine(queryset, user)
        return queryset


class PreferencesForm(forms.ModelForm):
    class Meta:
        model = Preference
        fields = ["time_zone"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"] = forms.ChoiceField(
            required=False,
            label="Time zone",
            help_text="Every page shows times in this zone, and says which.",
            choices=[("", f"Server default ({settings.TIME_ZONE})"), *time_zone_choices()],
        )


class PatientLookupForm(forms.Form):
    patient_reference = forms.CharField(
        max_length=100, label="Patient reference", widget=forms.TextInput(attrs={"autocomplete": "off"})
    )


class BaseReviewForm(forms.ModelForm):
    """A clinician's review of ``subject`` (a prediction or a series verdict), one form for page and
    API: the subject's labels (``review_labels()``), confirmed when the label is the subject's, the
    subject's rules checked under its case's row lock, audited. A subclass names its review model
    (``Meta.model``) and that model's foreign key to the subject (``subject_field``), and supplies
    the case, the audit and the checks below."""

    subject_field = ""

    class Meta:
        fields = ["label", "comment"]
        widgets = {"comment": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, subject, **kwargs):
        super().__init__(*args, **kwargs)
        self.subject = subject
        self.fields["label"] = forms.ChoiceField(
            choices=[(c, c) for c in subject.review_labels()], initial=subject.label, label="Label"
        )

    @property
    def case(self):
        """The case whose row lock the checks run under."""
        raise NotImplementedError

    def refusal_target(self):
        """What a refused review is audited against."""
        raise NotImplementedError

    def audit_fields(self) -> dict:
        """The fields of the review's audit event (and of a refusal's) beside decision and label."""
        raise NotImplementedError

    def check_reviewable(self):
        """Raise a Refusal if the subject may not be reviewed; called holding the case's row lock."""
        raise NotImplementedError

    def save(self, reviewer):
        """Record the review, or raise a Refusal, audited, and record nothing."""
        review = super().save(commit=False)
        setattr(review, self.subject_field, self.subject)
        review.reviewer = reviewer
        decision = self._meta.model.Decision
        review.decision = decision.CONFIRMED if review.label == self.subject.label else decision.CORRECTED
        audit = self.audit_fields()
        with AuditEvent.refusals(reviewer, self.refusal_target(), "review", **audit), transaction.atomic():
            # A teammate closing the case or retracting its scans at the same moment locks the case
            # row too: check the subject as it is once we hold that lock.
            self.case.lock()
            self.check_reviewable()
            # A reviewer's new review supersedes their earlier one (which stays, as history).
            amended = (
                self._meta.model.objects.filter(**{self.subject_field: self.subject, "reviewer": reviewer})
                .order_by("-created_at", "-id")
                .values_list("pk", flat=True)
                .first()
            )
            review.save()
            # Every review is audited, whichever door (page or API) it came through.
            AuditEvent.record(
                reviewer,
                AuditEvent.Verb.REVIEW,
                self.subject,
                decision=review.decision,
                label=review.label,
                **audit,
                **({"amends": amended} if amended else {}),
            )
        return review


class ReviewForm(BaseReviewForm):
    """The review of a scan's prediction (Scan.check_reviewable)."""

    subject_field = "prediction"

    class Meta(BaseReviewForm.Meta):
        model = Review

    def __init__(self, *args, prediction, **kwargs):
        super().__init__(*args, subject=prediction, **kwargs)
        self.prediction = prediction

    @property
    def scan(self):
        return self.prediction.scan

    @property
    def case(self):
        return self.scan.case

    def refusal_target(self):
        return self.scan

    def audit_fields(self):
        return {"case": self.scan.case_id}

    def check_reviewable(self):
        self.scan.refresh_from_db(fields=["outcome", "retracted_at"])
        self.scan.check_reviewable()


class ScanRetractForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        validators=[retraction_reason],
        label="Why is it taken back?",
        help_text="For example: wrong patient, a photo of a form. No names or other patient identifiers.",
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": retraction_reason.message},
    )


class LoginForm(AuthenticationForm):
    """Django's login form (through django-axes: failures count towards the lockout), refusing a
    PACS account: it pushes studies with its token and never logs in, whatever password it has."""

    error_messages = AuthenticationForm.error_messages | {
        "pacs_account": (
            f"This is a PACS account (role {PACS_GROUP!r}): it pushes studies with its API token and "
            "cannot log in. Log in with your own account."
        ),
    }

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if is_pacs_account(user):
            raise forms.ValidationError(self.error_messages["pacs_account"], code="pacs_account")

    @property
    def refused_pacs_account(self) -> bool:
        return self.has_error(NON_FIELD_ERRORS, code="pacs_account")
