"""Serves the plotly.js that the pinned plotly package ships, as static ``vendor/plotly.min.js``:
one pin (requirements.txt) decides the version the figures are built for and the one that draws them."""

import importlib.util
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import Error
from django.core.files.storage import FileSystemStorage

PREFIX = "vendor"
NAME = "plotly.min.js"


def plotly_package_data() -> Path:
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        return Path("plotly-is-not-installed")
    return Path(spec.origin).parent / "package_data"


class PlotlyFinder(BaseFinder):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=plotly_package_data())
        # collectstatic and WhiteNoise put a storage's files under its prefix.
        self.storage.prefix = PREFIX

    def check(self, **kwargs):
        if not self.storage.exists(NAME):
            return [
                Error(
                    f"plotly.js not found at {self.storage.path(NAME)}: is plotly installed?",
                    id="analytics.E001",
                )
            ]
        return []

    def find(self, path, find_all=False, **kwargs):
        find_all = self._check_deprecated_find_param(find_all=find_all, **kwargs)
        if path != f"{PREFIX}/{NAME}" or not self.storage.exists(NAME):
            return [] if find_all else None
        found = self.storage.path(NAME)
        return [found] if find_all else found

    def list(self, ignore_patterns):
        if self.storage.exists(NAME):
            yield NAME, self.storage
