"""Refusals: a change the object's current state does not allow, with the message shown as is."""


class Refusal(Exception):
    """A change the object's current state does not allow; the message is shown to the user as is.

    The pages show it as an error message; the API answers it in its error body with ``code``.
    """

    code = "conflict"


class NotReviewable(Refusal):
    code = "wrong_modality"


class CaseClosed(Refusal):
    code = "case_closed"


class NotAllowed(Refusal):
    code = "permission_denied"


class ScanBusy(Refusal):
    code = "scan_processing"


class QuestionSettled(Refusal):
    """The case's clinical question cannot change: a clinician has reviewed one of its scans."""

    code = "question_settled"
