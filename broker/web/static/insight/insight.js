// The partnership insight page: asks for an API key with the insight role, keeps it in memory only, and draws
// what /v1/insight/... serves (disclosure-controlled tables only). Every value goes on the page as text (textContent)
// or as chart data, never parsed as HTML. Charts: Plotly (plotly.min.js, served by the broker).
"use strict";

(function () {
  const SUPPRESSED = "c";
  const COLOURS = ["#1d4f91", "#c25e00", "#1b7f3b", "#7b3294", "#b3261e", "#00838f", "#6d4c41", "#5f6b7a"];
  let apiKey = null;
  let mapUrl = null;

  const $ = (id) => document.getElementById(id);

  function el(tag, props, children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children || []) {
      node.append(child instanceof Node ? child : document.createTextNode(child == null ? "" : String(child)));
    }
    return node;
  }

  class AuthError extends Error {}

  async function api(path, as) {
    const response = await fetch(path, {
      headers: { "Authorization": "Bearer " + apiKey }, cache: "no-store", credentials: "omit",
    });
    if (response.status === 401 || response.status === 403) {
      throw new AuthError(response.status === 401 ? "The API key was not accepted." :
        "This key does not have the insight role.");
    }
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(typeof detail === "string" ? detail : "request refused (" + response.status + ")");
    }
    return as === "blob" ? response.blob() : response.json();
  }

  // --- sign in / out ----------------------------------------------------------------------------------------------
  async function signIn(event) {
    event.preventDefault();
    apiKey = $("apikey").value.trim();
    $("apikey").value = "";
    $("login-error").textContent = "";
    try {
      await load();
      $("login").hidden = true;
      $("app").hidden = false;
      $("signout").hidden = false;
      redraw();
    } catch (err) {
      apiKey = null;
      $("login-error").textContent = err.message;
    }
  }

  function signOut(message) {
    apiKey = null;
    if (mapUrl) { URL.revokeObjectURL(mapUrl); mapUrl = null; }
    for (const id of ["timeliness-charts", "trend-charts", "rises", "area-tables", "measure-words"]) {
      $(id).replaceChildren();
    }
    $("map-image").removeAttribute("src");
    $("app").hidden = true;
    $("signout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
  }

  // --- drawing ----------------------------------------------------------------------------------------------------
  const shown = (v) => (v === SUPPRESSED || v === "x" || v == null ? null : v);

  function suppressedCount(table) {
    let n = 0;
    for (const row of table.rows) for (const c of table.columns) if (row.cells[c] === SUPPRESSED) n += 1;
    return n;
  }

  function words(measures, id) {
    return measures.find((m) => m.id === id) || {};
  }

  function exportButton(table, format) {
    const button = el("button", { type: "button", textContent: format.toUpperCase(),
      title: "Download this table as " + format.toUpperCase() + " (disclosure-controlled)" });
    button.dataset.export = table.measure + ":" + format;
    button.addEventListener("click", () => download(table, format).catch(showError));
    return button;
  }

  async function download(table, format) {
    const query = new URLSearchParams({ by: table.rows_by, period: table.columns_by, format: format });
    const blob = await api("/v1/insight/tables/" + encodeURIComponent(table.measure) + "?" + query, "blob");
    const link = el("a", { href: URL.createObjectURL(blob),
      download: table.measure + "-by-" + table.rows_by + "-" + table.columns_by + "." + format });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  const pending = [];  // charts to draw once their cards are on the page and visible

  function card(table, measures, breakdowns) {
    const about = words(measures, table.measure);
    const chart = el("div", { className: "chart" });
    chart.dataset.measure = table.measure;
    const hidden = suppressedCount(table);
    const box = el("article", { className: "card" }, [
      el("h3", { textContent: about.name || table.title }),
      el("p", { className: "definition", textContent: (about.definition || "") +
        (table.target ? " Target: " + table.target + "." : "") }),
      chart,
      el("div", { className: "foot" }, [
        el("span", { textContent: "By " + (breakdowns[table.rows_by] || table.rows_by) + ". " +
          (hidden ? hidden + " figure" + (hidden === 1 ? "" : "s") + " shown as c (small numbers)." :
            "No figure suppressed.") }),
        el("span", { className: "exports" }, [exportButton(table, "csv"), exportButton(table, "json")]),
      ]),
      details(table, "The figures"),
    ]);
    box.dataset.measure = table.measure;
    pending.push([chart, table]);
    return box;
  }

  function traces(table) {
    const rate = table.is_rate;
    return table.rows.map((row, i) => {
      const ys = table.columns.map((c) => shown(rate ? (row.rates || {})[c] : row.cells[c]));
      const text = table.columns.map((c) => row.cells[c] === SUPPRESSED ? "c (small number, hidden)" : "");
      return rate
        ? { type: "scatter", mode: "lines+markers", name: row.row, x: table.columns, y: ys, text: text,
            line: { color: COLOURS[i % COLOURS.length] }, connectgaps: false }
        : { type: "bar", name: row.row, x: table.columns, y: ys, text: text, textposition: "none",
            marker: { color: COLOURS[i % COLOURS.length] } };
    });
  }

  function draw(node, table) {
    if (typeof Plotly === "undefined") { node.textContent = "The charting library did not load."; return; }
    const rate = table.is_rate;
    const layout = {
      barmode: "stack", margin: { l: 48, r: 10, t: 10, b: 40 }, height: 280, font: { size: 11 },
      legend: { orientation: "h", y: -0.2 }, xaxis: { type: "category" },
      yaxis: { title: { text: rate ? "%" : "number" }, rangemode: "tozero" },
      paper_bgcolor: "#fff", plot_bgcolor: "#fff",
    };
    if (rate) {
      layout.yaxis.range = [0, 105];
      if (table.target) {  // every one within the target: 100%
        layout.shapes = [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 100, y1: 100,
          line: { color: "#b3261e", dash: "dash", width: 1.5 } }];
        layout.annotations = [{ xref: "paper", x: 1, y: 100, xanchor: "right", yanchor: "bottom", showarrow: false,
          text: "target: " + table.target + ", every time", font: { color: "#b3261e", size: 10 } }];
      }
    }
    const data = traces(table);
    if (!data.some((trace) => trace.y.some((y) => y != null))) {  // an empty chart says nothing: say why
      node.classList.add("empty");
      node.textContent = "Nothing to chart yet: every figure is 0 or hidden (c) because it is small. " +
        "The figures are in the table below.";
      return;
    }
    Plotly.newPlot(node, data, layout, { displayModeBar: false, responsive: true });
  }

  function redraw() {
    while (pending.length) {
      const [node, table] = pending.shift();
      draw(node, table);
    }
  }

  function figure(value, rate) {
    if (value === SUPPRESSED) return el("td", { className: "c", textContent: SUPPRESSED, title: "small number, hidden" });
    const text = rate == null || rate === "x" || rate === SUPPRESSED ? String(value) : value + " (" + rate + "%)";
    return el("td", { textContent: text });
  }

  // Districts in their natural order (ZZ2 before ZZ10), the grouped and unknown rows last.
  const LAST = /^(other|unknown)/;
  function ordered(rows) {
    return [...rows].sort((a, b) => (LAST.test(a.row) - LAST.test(b.row)) ||
      a.row.localeCompare(b.row, "en-GB", { numeric: true }));
  }

  function htmlTable(table) {
    const head = el("tr", {}, [el("th", { textContent: table.rows_by }),
      ...table.columns.map((c) => el("th", { textContent: c })), el("th", { textContent: "total" })]);
    const body = ordered(table.rows).map((row) => el("tr", {}, [el("th", { textContent: row.row, scope: "row" }),
      ...table.columns.map((c) => figure(row.cells[c], (row.rates || {})[c])), figure(row.total)]));
    const totals = table.column_totals
      ? [el("tr", {}, [el("th", { textContent: "total", scope: "row" }),
          ...table.columns.map((c) => figure(table.column_totals[c])), figure(table.total)])] : [];
    const t = el("table", {}, [el("thead", {}, [head]), el("tbody", {}, [...body, ...totals])]);
    t.dataset.measure = table.measure;
    return el("div", { className: "scroll" }, [t]);
  }

  function details(table, label) {
    const d = el("details", {}, [el("summary", { textContent: label }), htmlTable(table)]);
    return d;
  }

  function render(data) {
    $("min-population").textContent = String(data.min_population);
    const measures = data.measures;
    $("timeliness-charts").replaceChildren(...data.timeliness.map((t) => card(t, measures, data.breakdowns)));
    $("trend-charts").replaceChildren(...data.trends.map((t) => card(t, measures, data.breakdowns)));
    $("area-tables").replaceChildren(...data.areas.map((t, i) => {
      const about = words(measures, t.measure);
      const box = el("article", { className: "card" }, [
        el("h3", { textContent: (about.name || t.title) + " by area" }),
        htmlTable(t),
        el("div", { className: "foot" }, [el("span", { textContent: suppressedCount(t) + " figures shown as c." }),
          el("span", { className: "exports" }, [exportButton(t, "csv"), exportButton(t, "json")])]),
      ]);
      if (i < 2) return box;  // the first two open; the rest one click away
      return el("details", {}, [el("summary", { textContent: (about.name || t.title) + " by area" }), box]);
    }));
    const rises = data.rises || [];
    $("rises").replaceChildren(rises.length
      ? el("div", {}, [el("h3", { textContent: "Rises flagged to the hub" }),
          el("ul", {}, rises.map((r) => {
            const item = el("li", {}, [el("strong", { textContent: r.unit }), " (" + (data.breakdowns[r.unit_kind] ||
              r.unit_kind) + "): " + r.name + " in " + r.period + " rose beyond its own history (" + r.method +
              ", 1 in " + Math.round(1 / r.alpha) + " chance of a false alarm across all areas)."]);
            item.dataset.unit = r.unit;
            return item;
          }))])
      : el("p", { textContent: "No area, school or GP practice has risen beyond its own history this period." }));
    $("measure-words").replaceChildren(...measures.flatMap((m) => [
      el("dt", { textContent: m.name }),
      el("dd", { textContent: m.definition + (m.target ? " Target: " + m.target + "." : "") +
        (m.available ? "" : " Not yet available: " + (m.unavailable_why || "no data") + ".") }),
    ]));
  }

  async function load() {
    const data = await api("/v1/insight/overview");
    render(data);
    const svg = await api("/v1/insight/map.svg", "blob");
    if (mapUrl) URL.revokeObjectURL(mapUrl);
    mapUrl = URL.createObjectURL(svg);
    $("map-image").src = mapUrl;
    $("map-open").href = mapUrl;
  }

  function showError(err) {
    if (err instanceof AuthError) { signOut(err.message); return; }
    $("app-error").textContent = err.message;
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", signIn);
    $("signout").addEventListener("click", () => signOut(""));
  });
})();
