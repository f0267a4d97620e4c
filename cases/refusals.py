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


class UploadRejected(Exception):
    """A file that cannot become a scan; the message is shown to the uploader as is."""


class UploadRefused(Exception):
    """The upload as a whole is refused and nothing is stored; the message is shown as is.

    ``status`` is the HTTP answer (413: more work than one request may ask for; 400: an archive
    we do not open; 503: the server could not check it in time), ``code`` the API's error code,
    ``retry_after`` seconds or None.
    """

    def __init__(self, message, *, status, code, retry_after=None):
        super().__init__(message)
        self.status, self.code, self.retry_after = status, code, retry_after


class QuestionSettled(Refusal):
    """The case's clinical question cannot change: a clinician has reviewed one of its scans."""

    code = "question_settled"
