"""The one place analytics decides which case images it may use: analytics consent granted."""

from django.db.models import Q


def cases_with_analytics_consent():
    """Cases whose current analytics/research consent is granted (pending, refused, withdrawn: out)."""
    from cases.models import Consent, cases_with_consent

    return cases_with_consent(Consent.Scope.ANALYTICS)


def usable_images(dataset):
    """A dataset's images that may enter a statistic: folder images, and case scans with consent
    whose pixels have been neither erased nor retracted."""
    consented_scan = Q(
        scan__case__in=cases_with_analytics_consent(),
        scan__erased_at__isnull=True,
        scan__retracted_at__isnull=True,
    )
    return dataset.images.filter(Q(scan__isnull=True) | consented_scan)


def usable_reviews():
    """Reviews whose scan belongs to a case with analytics consent and was not retracted (field
    performance)."""
    from inference.models import Review

    return Review.objects.filter(
        prediction__scan__case__in=cases_with_analytics_consent(), prediction__scan__retracted_at=None
    )


def reviews_without_consent():
    """Reviews left out of field performance only because their case lacks analytics consent."""
    from inference.models import Review

    return Review.objects.filter(prediction__scan__retracted_at=None).exclude(
        prediction__scan__case__in=cases_with_analytics_consent()
    )


def stats_still_allowed(stats) -> bool:
    """False when a case scan counted in the cached statistics has since lost analytics consent, or
    was erased or retracted: the cache must then be hidden and recomputed, so a withdrawal (or a
    retraction) takes effect at once."""
    from cases.models import Scan

    included = stats.data.get("scan_ids") or []
    if not included:
        return True
    allowed = (
        Scan.objects.not_retracted()
        .filter(pk__in=included, case__in=cases_with_analytics_consent(), erased_at__isnull=True)
        .count()
    )
    return allowed == len(set(included))
