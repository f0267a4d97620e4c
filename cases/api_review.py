"""What the API's review endpoints share (a scan's, cases/api.py; a series', api_series_review.py):
a review form saved with its errors and refusals answered as the API answers them, and Conflict,
the 409 of a request that the object's state refuses."""

from rest_framework import exceptions, status
from rest_framework.response import Response

from .models import Refusal


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the object's state."
    default_code = "conflict"


def review_response(form, reviewer, serializer_class):
    """Save a review form (cases.forms.BaseReviewForm) for the API: its errors are a 400, a Refusal a
    409 with the refusal's code, the review a 201 in ``serializer_class``."""
    if not form.is_valid():
        raise exceptions.ValidationError({k: [str(m) for m in v] for k, v in form.errors.items()})
    try:
        review = form.save(reviewer=reviewer)
    except Refusal as refusal:
        raise Conflict(str(refusal), code=refusal.code)
    return Response(serializer_class(review).data, status=status.HTTP_201_CREATED)
