"""``{{ figure|figure_script:"fig-id" }}``: a Plotly figure as a JSON <script> for static/js/analytics.js."""

from django import template
from django.utils.html import json_script
from plotly.utils import PlotlyJSONEncoder

register = template.Library()


@register.filter
def figure_script(figure, element_id):
    """``figure``: a plotly Figure or its ``to_plotly_json()`` dict. Plotly's encoder turns numpy
    values and NaN (as null) into JSON that JSON.parse reads."""
    data = figure.to_plotly_json() if hasattr(figure, "to_plotly_json") else figure
    return json_script(data, element_id, encoder=PlotlyJSONEncoder)
