"""The analytics dashboard: pre-computed metrics as JSON, and the same as an HTML page with charts."""
from __future__ import annotations

import datetime as dt
from html import escape

from flask import Blueprint, Flask, Response, current_app, jsonify

from api import charts, openapi
from resolve_worker import analytics

bp = Blueprint("analytics", __name__)

_CHECK_DRAWN = """
document.querySelectorAll('svg.chart').forEach(function (svg) {
  var drawn = 0;
  svg.querySelectorAll('rect.bar').forEach(function (r) {
    var box = r.getBBox();
    if (box.width > 0 && box.height > 0) { drawn += 1; }
  });
  svg.setAttribute('data-drawn', String(drawn));
});
document.body.setAttribute('data-charts-ready', 'true');
"""
_STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}
.grid{display:flex;flex-wrap:wrap;gap:16px}.chart-box{margin:0;border:1px solid #ddd;padding:8px}
figcaption{font-weight:600;margin-bottom:4px}.tick{font-size:10px;fill:#555}.axis{stroke:#999}
.empty{fill:#999}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
"""


@bp.get("/api/v1/analytics/dashboard")
def dashboard_json():  # noqa: ANN201
    return jsonify(analytics.read(current_app.config["PAYREADY"]))


def _rows(metrics: dict, key: str) -> list[dict]:
    return (metrics.get(key) or {}).get("rows") or []


def _table(title: str, rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return f"<h2>{escape(title)}</h2><p>no data yet</p>"
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<h2>{escape(title)}</h2><table data-metric=\"{escape(title)}\"><tr>{head}</tr>{body}</table>"


def render_dashboard(domain: str, metrics: dict) -> str:
    now = dt.datetime.now(dt.timezone.utc)
    freshness = []
    for r in _rows(metrics, "freshness_per_source"):
        last = dt.datetime.fromisoformat(r["last_success_at"]) if r.get("last_success_at") else None
        freshness.append((r["source"], round((now - last).total_seconds() / 60, 1) if last else 0))
    resolution = {}
    for r in _rows(metrics, "resolution"):
        resolution[f"{r['entity_type']}:{r['method']}"] = resolution.get(f"{r['entity_type']}:{r['method']}", 0) + r["identities"]
    dead = {}
    for r in _rows(metrics, "dead_letters_per_source"):
        dead[r["source"]] = dead.get(r["source"], 0) + r["n"]
    runs = list(reversed(_rows(metrics, "run_history")))
    figures = [
        charts.stacked_bar_chart("interactions_per_source_per_day", "Interactions per source per day",
                                 [(r["day"], r["source"], r["n"]) for r in _rows(metrics, "interactions_per_source_per_day")]),
        charts.horizontal_bar_chart("most_active_companies", "Most active accounts (interactions)",
                                    [(r["name"] or r["company_id"], r["interactions"])
                                     for r in _rows(metrics, "most_active_companies")]),
        charts.bar_chart("freshness_per_source", "Minutes since the last successful sync, per source", freshness),
        charts.bar_chart("resolution", "Identities resolved, by entity type and method", sorted(resolution.items())),
        charts.bar_chart("dead_letters_per_source", "Dead letters waiting, per source", sorted(dead.items())),
        charts.bar_chart("run_history", "Recent runs: records in", [(r["run_id"][:8], r["records_in"]) for r in runs],
                         series="runs"),
    ]
    computed = max((m.get("computed_at", "") for m in metrics.values()), default="never")
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Pay Ready dashboard: {escape(domain)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Dashboard: {escape(domain)}</h1><p>metrics computed at the end of each sync; last: {escape(computed)}</p>"
        + _table("totals", _rows(metrics, "totals"),
                 ["interactions", "persons", "companies", "chunks", "chunks_embedded", "dead_letters"])
        + "<div class=\"grid\">" + "".join(figures) + "</div>"
        + _table("resolution summary", _rows(metrics, "resolution_summary"),
                 ["identities", "mapped", "low_confidence", "persons", "companies", "unlinked_interactions"])
        + _table("run history", _rows(metrics, "run_history"),
                 ["run_id", "status", "trigger", "created_at", "seconds", "records_in", "processed", "dead_lettered"])
        + f"<script>{_CHECK_DRAWN}</script></body></html>")


@bp.get("/dashboard")
def dashboard_html():  # noqa: ANN201
    settings = current_app.config["PAYREADY"]
    page = render_dashboard(settings.domain, analytics.read(settings))
    return Response(page, mimetype="text/html", headers={
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
        "Cache-Control": "no-store"})


OPENAPI = {
    "/api/v1/analytics/dashboard": {"get": {
        "summary": "Pre-computed metrics (refreshed at the end of every sync), one entry per metric",
        "responses": openapi.responses("Metrics", "Dashboard", 401, 403),
    }},
    "/dashboard": {"get": {
        "summary": "The dashboard as an HTML page with charts (API key as Bearer, or as the Basic password)",
        "security": [{"apiKey": []}],
        "responses": openapi.responses("HTML page", None, 401, 403, media="text/html"),
    }},
}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    openapi.add_paths(app, OPENAPI)
