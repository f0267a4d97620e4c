"""``{{ figure|figure_script:"fig-id" }}``: a Plotly figure as a JSON <script> for static/js/analytics.js."""

from django import template
from django.utils.html import json_script
from plotly.utils import PlotlyJSONEncoder

register = template.Library()


@register.filter
def figure_script(figure, element_id):
    # Plotly's encoder: numpy values and NaN (as null) become JSON that JSON.parse reads.
    return json_script(figure.to_plotly_json(), element_id, encoder=PlotlyJSONEncoder)
