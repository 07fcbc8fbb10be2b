"""The HTML pages' templates: jinja2 with autoescape on, so every value is escaped unless it is
marked safe (`safe`: plotly's divs and plotly.js, which the page inlines). `render` is the one
entry point of the report and the comparison page; `REPORT` is the report's template."""
from __future__ import annotations

from typing import Any


def safe(text: str):
    """``text`` as markup that the template inserts unescaped (plotly's HTML, a JSON manifest)."""
    from markupsafe import Markup

    return Markup(text)


def render(template: str, **context: Any) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(**context)


REPORT = """<!DOCTYPE html>
{% macro leaderboard(board) %}
<table class='lb'><thead><tr>{% for h in board.head %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for r in board.rows %}
<tr><td>{{ r.rank }}</td><td>{{ r.trial }}</td><td><span class='st {{ r.state }}'>{{ r.state }}</span></td>
{%- for c in r.cells %}<td>{{ c }}</td>{% endfor -%}
<td class='sample'>
{%- if r.sample|length <= 12 %}{% for s in r.sample %}<span>{{ s }}</span> {% endfor %}
{%- else %}<details><summary>{{ r.sample|length }} choices</summary>
{%- for s in r.sample %}<span>{{ s }}</span> {% endfor %}</details>{% endif %}</td>
<td>{{ r.note }}</td></tr>
{% endfor %}
</tbody></table>
{% endmacro %}
<html lang="en"><head><meta charset="utf-8">
<title>nasforge report: {{ name }}</title>
<style>{{ css }}</style>
<script type="text/javascript">{{ plotlyjs }}</script>
<script type="application/json" id="nasforge-report">{{ manifest }}</script>
</head><body>
<h1>Sweep {{ name }}</h1>
<p class="note">nasforge report, {{ now }}; plotly {{ plotly_version }}.
Self-contained: opens with no network.</p>
<dl class='summary'>{% for k, v in summary %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>
<h2>Leaderboard</h2>
{{ leaderboard(board) }}
{% if search %}
<h2>{{ search.title }}</h2>
{% if search.board %}
<p class='note' id='search-note'>{{ search.note }}</p>
{{ leaderboard(search.board) }}
{% else %}
<p class='note'>{{ search.note }}</p>
{% endif %}
{% endif %}
{% for p in plots %}
<h2>{{ p.title }}</h2>
{% if p.div %}<div class='plot'>{{ p.div }}</div>
{% else %}<p class='note' id='note-{{ p.key }}'>{{ p.note }}</p>
{% endif %}

{% endfor %}
<h2>Top architectures</h2>
{% for a in archs %}
<div class='arch'><h3>Trial {{ a.number }} ({{ a.place }}): {{ a.score }}</h3>
{%- for img in a.images %}<figure><img alt='{{ img.name }} of trial {{ a.number }}' src='{{ img.uri }}'>
<figcaption>{{ img.name }}</figcaption></figure>
{%- else %}<p class='note'>this trial's space draws no diagram</p>{% endfor %}</div>
{% else %}
<p class='note'>no completed trial yet</p>
{% endfor %}
</body></html>
"""
