"""The rater's page of the human-audit kit: one static HTML file, no network.

The kit's items are embedded as JSON; the page shows each query with its blinded
candidates (audio players when the kit has audio URIs), a 0..3 grade per candidate, and a
button that saves the judgements as a CSV (``JUDGEMENT_COLUMNS``) through a Blob download.
Grades are also kept in the browser's local storage, so closing the page loses nothing.
"""

from __future__ import annotations

import html
import json

import pandas as pd

from expressive_retrieval.evaluation.audit.kit import JUDGEMENT_COLUMNS

GRADE_LABELS = {
    0: "0: not played alike",
    1: "1: somewhat alike",
    2: "2: clearly alike",
    3: "3: played the same way",
}

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Expressive similarity audit {kit_id}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
section.query {{ border-top: 2px solid #888; margin-top: 2rem; padding-top: 0.5rem; }}
.item {{ display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; padding: 0.4rem 0; border-bottom: 1px solid #ddd; }}
.item .id {{ font-family: monospace; min-width: 6rem; }}
.grades label {{ margin-right: 0.6rem; white-space: nowrap; }}
#bar {{ position: sticky; top: 0; background: #f4f4f4; padding: 0.6rem; border: 1px solid #ccc; }}
.missing {{ background: #fff3cd; }}
</style>
</head>
<body>
<h1>Expressive similarity audit</h1>
<p>Kit <code>{kit_id}</code>: {num_queries} queries, {num_items} candidates.
For each query, listen to the query clip, then grade every candidate by how alike it is
<em>played</em> (tempo feel, dynamics, articulation, phrasing, tone), not by whether it is
the same piece or recording. Candidates are in random order and come from several systems
you are not told about.</p>
<ul>{legend}</ul>
<div id="bar">
<label>Your name or initials: <input id="rater" required></label>
<button id="save">Save judgements (CSV)</button>
<span id="progress"></span>
</div>
<div id="queries"></div>
<p>Send the saved file to the operator, who drops it into the judgements folder.</p>
<script>
const KIT = {data};
const COLUMNS = {columns};
const STORE = "audit-" + KIT.kit_id;
const saved = JSON.parse(localStorage.getItem(STORE) || "{{}}");
function player(uri, start, end) {{
  if (!uri) return '<span class="noaudio">(no audio: clip ' + start.toFixed(0) + '-' + end.toFixed(0) + ' s)</span>';
  const audio = document.createElement("audio");
  audio.controls = true; audio.preload = "none";
  audio.src = uri + "#t=" + start + "," + end;
  return audio.outerHTML;
}}
function render() {{
  const root = document.getElementById("queries");
  for (const q of KIT.queries) {{
    const section = document.createElement("section");
    section.className = "query";
    let inner = "<h2>Query " + q.number + ": <code>" + q.clip_id + "</code></h2>" +
      player(q.audio_uri, q.start_s, q.end_s);
    for (const item of q.items) {{
      let grades = "";
      for (const g of [0, 1, 2, 3]) {{
        const checked = saved[item.item_id] === g ? " checked" : "";
        grades += '<label><input type="radio" name="' + item.item_id + '" value="' + g + '"' + checked + "> " + g + "</label>";
      }}
      inner += '<div class="item" id="row-' + item.item_id + '"><span class="id">' + item.item_id +
        "</span>" + player(item.audio_uri, item.start_s, item.end_s) +
        '<span class="grades">' + grades + "</span></div>";
    }}
    section.innerHTML = inner;
    root.appendChild(section);
  }}
  root.addEventListener("change", (event) => {{
    saved[event.target.name] = Number(event.target.value);
    localStorage.setItem(STORE, JSON.stringify(saved));
    progress();
  }});
  document.getElementById("rater").value = localStorage.getItem(STORE + "-rater") || "";
  progress();
}}
function items() {{ return KIT.queries.flatMap((q) => q.items.map((i) => [q, i])); }}
function progress() {{
  const all = items();
  const done = all.filter(([, i]) => i.item_id in saved).length;
  document.getElementById("progress").textContent = done + " / " + all.length + " graded";
}}
function quote(value) {{ return '"' + String(value).replaceAll('"', '""') + '"'; }}
document.getElementById("save").addEventListener("click", () => {{
  const rater = document.getElementById("rater").value.trim();
  if (!rater) {{ alert("Please enter your name or initials first."); return; }}
  localStorage.setItem(STORE + "-rater", rater);
  const lines = [COLUMNS.join(",")];
  for (const [q, i] of items()) {{
    document.getElementById("row-" + i.item_id).classList.toggle("missing", !(i.item_id in saved));
    if (i.item_id in saved) {{
      lines.push([KIT.kit_id, rater, i.item_id, q.clip_id, i.clip_id, saved[i.item_id]].map(quote).join(","));
    }}
  }}
  const blob = new Blob([lines.join("\\n") + "\\n"], {{ type: "text/csv" }});
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = "judgements_" + KIT.kit_id + "_" + rater.replace(/[^A-Za-z0-9_-]/g, "_") + ".csv";
  document.body.appendChild(link); link.click(); link.remove();
}});
render();
</script>
</body>
</html>
"""


def _clip(row: pd.Series, side: str) -> dict:
    uri = row.get(f"{side}_audio_uri", "")
    return {
        "clip_id": row[f"{side}_clip_id"],
        "start_s": float(row[f"{side}_start_s"]),
        "end_s": float(row[f"{side}_end_s"]),
        "audio_uri": "" if pd.isna(uri) else str(uri),
    }


def audit_page(kit: pd.DataFrame) -> str:
    """The self-contained rater page for the kit rows (one row per blinded item)."""
    queries = []
    for number, group in kit.groupby("query_number", sort=True):
        first = group.iloc[0]
        query = _clip(first, "query") | {"number": int(number), "items": []}
        for _, row in group.iterrows():
            query["items"].append(_clip(row, "candidate") | {"item_id": row["item_id"]})
        queries.append(query)
    kit_id = str(kit["kit_id"].iloc[0]) if len(kit) else "empty"
    data = json.dumps({"kit_id": kit_id, "queries": queries})
    # JSON inside <script>: keep "</" from closing the element early.
    data = data.replace("</", "<\\/")
    legend = "".join(f"<li>{html.escape(label)}</li>" for label in GRADE_LABELS.values())
    return _PAGE.format(
        kit_id=html.escape(kit_id),
        num_queries=len(queries),
        num_items=len(kit),
        legend=legend,
        data=data,
        columns=json.dumps(JUDGEMENT_COLUMNS),
    )
