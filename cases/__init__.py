"""Cases, scans, reviews and the audit trail: what a clinician works with."""
