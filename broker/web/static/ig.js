// The IG page: asks for the IG API key, keeps it in memory only, and calls /v1/ig/... with it.
// Every value from the API is put on the page with textContent, never parsed as HTML.
"use strict";

(function () {
  const KINDS = ["record_received", "record_adapted", "record_rejected", "deadlettered", "event_published",
    "decision", "delivered", "delivery_read", "key_unwrap", "key_shred", "protocol_change", "admin_action",
    "identity_linked", "human_decision"];
  let apiKey = null;
  let searchParams = null;
  let nextBefore = null;

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

  // as: "json" (the default) or "text" (the subject access report's HTML, explain's text)
  async function api(path, options, as) {
    const headers = { "Authorization": "Bearer " + apiKey, "Accept": as === "text" ? "text/html, text/plain"
      : "application/json" };
    if (options && options.body) headers["Content-Type"] = "application/json";
    const response = await fetch(path, Object.assign({}, options, {
      headers: headers, cache: "no-store", credentials: "omit",
    }));
    if (response.status === 401 || response.status === 403) {
      throw new AuthError(response.status === 401 ? "The API key was not accepted." :
        "This key does not have the IG auditor role.");
    }
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(typeof detail === "string" ? detail : "request refused (" + response.status + ")");
    }
    return as === "text" ? response.text() : response.json();
  }

  function showError(err) {
    if (err instanceof AuthError) { signOut(err.message); return; }
    $("app-error").textContent = err.message;
  }

  function run(task) {
    $("app-error").textContent = "";
    return task().catch(showError);
  }

  // --- sign in / out --------------------------------------------------------------------------------------------
  async function signIn(event) {
    event.preventDefault();
    apiKey = $("apikey").value.trim();
    $("apikey").value = "";
    $("login-error").textContent = "";
    try {
      const status = await api("/v1/ig/verification");
      $("login").hidden = true;
      $("app").hidden = false;
      $("signout").hidden = false;
      showVerification(status);
    } catch (err) {
      signOut(err instanceof AuthError ? err.message : "Could not reach the IG API: " + err.message);
    }
  }

  function signOut(message) {
    apiKey = null;
    $("app").hidden = true;
    $("signout").hidden = true;
    $("login").hidden = false;
    for (const id of ["search-results", "timeline-results", "timeline-disclosures", "disclosures-results",
      "deadletters-results", "protocols-results", "protocol-head", "protocol-agreement", "protocol-rules"]) {
      $(id).replaceChildren();
    }
    $("verify-text").textContent = "";
    $("find-result").textContent = "";
    $("explain-text").textContent = "";
    $("explain").hidden = true;
    $("report-open").hidden = true;
    closeReport();
    recipientNames = {};
    basisNames = {};
    timelineToken = null;
    $("login-error").textContent = message || "";
  }

  // --- verification ---------------------------------------------------------------------------------------------
  function showVerification(v) {
    const badge = $("verify-badge");
    badge.textContent = v.ok ? "Verification OK" : "TAMPERED";
    badge.className = "badge " + (v.ok ? "ok" : "bad");
    $("verify-text").textContent = v.ok
      ? v.reason + " (head seq " + v.head_seq + ", checked " + TIME.format(new Date(v.checked_at)) + ")"
      : "first bad record: seq " + v.first_bad_seq + " — " + v.reason;
  }

  // --- words and times ------------------------------------------------------------------------------------------
  // Local time with its zone ("2 Mar 2026, 11:00 GMT"); the ISO time stays in the tooltip.
  const TIME = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit", timeZoneName: "short" });
  function localTime(iso) {
    if (!iso) return "";
    const at = new Date(iso);
    if (isNaN(at)) return iso;
    return el("time", { dateTime: iso, title: iso }, [TIME.format(at)]);
  }
  const KIND_WORDS = {
    record_received: "Record received", record_adapted: "Record read", record_rejected: "Record rejected",
    deadlettered: "Dead-lettered", event_published: "Event recorded", decision: "Sharing decision",
    delivered: "Sent", delivery_read: "Read by recipient", delivery_read_up_to: "Read by recipient (Kafka)",
    key_unwrap: "Key used", key_shred: "Erased (keys shredded)", protocol_change: "Protocol changed",
    admin_action: "Staff action", identity_linked: "Records linked", human_decision: "Decided by a person",
    determination: "Determination recorded",
  };
  const words = (code) => String(code || "").replace(/_/g, " ");
  const eventWords = (t) => String(t || "").replace(".", ": ").replace(/_/g, " ");
  let recipientNames = {};  // subscriber -> "Partner (role)", as the API's answers name them
  let basisNames = {};  // lawful basis or gateway code -> its words (UK GDPR, DPA 2018, the Acts)
  function learnWords(data) {
    Object.assign(recipientNames, data.recipients || {});
    Object.assign(basisNames, data.bases || {});
  }
  function recipient(code) {
    if (!code) return "";
    return recipientNames[code] ? el("span", { title: code }, [recipientNames[code]]) : code;
  }

  // --- tables ---------------------------------------------------------------------------------------------------
  const rec = (e) => e.record || {};
  const whenIso = (e) => rec(e).time || (e.pruned && e.pruned.time) || "";
  const when = (e) => localTime(whenIso(e));
  const kindOf = (e) => rec(e).kind || (e.pruned && e.pruned.kind) || "";
  const kindWords = (e) => {
    const kind = kindOf(e);
    const r = rec(e);
    if (kind === "decision" || kind === "human_decision") {
      return (KIND_WORDS[kind] || kind) + ": " + (r.outcome === "deliver" ? "share" : r.outcome === "withhold"
        ? "withhold" : words(r.outcome || (r.status === "referred" ? "referred to a person" : "")));
    }
    return KIND_WORDS[kind] || words(kind);
  };
  const list = (v) => {
    if (Array.isArray(v)) return v.join(", ");
    if (v && typeof v === "object") return Object.entries(v).map(([path, kind]) => path + " (" + kind + ")").join(", ");
    return v || "";
  };

  // A consent restriction set aside under a duty to disclose: shown on the row itself, never only in a detail.
  function overrideMark(o) {
    if (!o) return "";
    const gateway = basisNames[o.gateway] || o.gateway;
    return el("span", { className: "override", title: "gateway code: " + o.gateway },
      ["OVERRIDDEN: " + words(o.restriction) + (o.recorded_on ? " (recorded " + o.recorded_on + ")" : "") +
        " set aside under " + gateway]);
  }

  function tokenLink(token) {
    if (!token) return "";
    // Tokens are long: show the start, keep the whole in the tooltip and in data-token.
    const short = token.length > 18 ? token.slice(0, 16) + "…" : token;
    const a = el("a", { className: "token", href: "#", title: token + " — open this child's timeline" }, [short]);
    a.dataset.token = token;
    a.addEventListener("click", (ev) => { ev.preventDefault(); openTimeline(token); });
    return a;
  }

  // columns: [label, value of a row, "tech"?]: technical columns show only with "Show technical details"
  function table(columns, rows, emptyText, rowAttrs) {
    if (!rows.length) return el("p", { className: "count" }, [emptyText || "Nothing found."]);
    const cls = (c) => [c[2] ? "tech" : "", "col-" + c[0].toLowerCase().replace(/[^a-z]+/g, "-")].join(" ").trim();
    const head = el("tr", {}, columns.map((c) => el("th", { scope: "col", className: cls(c) }, [c[0]])));
    const body = rows.map((row) => {
      const tr = el("tr", {}, columns.map((c) => {
        const value = c[1](row);
        return el("td", { className: cls(c) }, [value instanceof Node ? value : String(value == null ? "" : value)]);
      }));
      for (const [name, value] of Object.entries(rowAttrs ? rowAttrs(row) : {})) tr.setAttribute(name, value);
      return tr;
    });
    return el("div", { className: "scroll" }, [el("table", {}, [el("thead", {}, [head]), el("tbody", {}, body)])]);
  }

  function detail(e) {
    if (!e.record) return el("span", { className: "pruned" }, ["pruned " + ((e.pruned && e.pruned.at) || "")]);
    const r = e.record;
    const parts = [];
    if (r.outcome) parts.push(r.outcome === "deliver" ? "delivered" : "withheld");
    if (r.lawful_basis) parts.push("basis: " + list(r.lawful_basis));
    if (r.fields_released) parts.push("released: " + list(r.fields_released));
    if (r.fields_masked && Object.keys(r.fields_masked).length) parts.push("masked: " + list(r.fields_masked));
    if (r.consent_override) {
      parts.push("consent " + r.consent_override.restriction + " overridden by " + r.consent_override.gateway);
    }
    if (r.human_decision) {  // referred to a person, or what the person decided (and what they withheld)
      const h = r.human_decision;
      parts.push(h.status === "referred" ? "referred for a human decision (" + h.restriction + ")"
        : "human decision: " + h.choice + " (" + h.restriction + ")");
      if (h.withheld_classifications && h.withheld_classifications.length) {
        parts.push("decider withheld: " + list(h.withheld_classifications));
      }
    }
    if (r.fields_withheld) parts.push("withheld: " + list(r.fields_withheld));
    if (r.reason) parts.push(r.reason);
    if (r.superseded) parts.push("token folded in: " + r.superseded);
    if (r.kind === "identity_linked" && r.count) parts.push(r.count + " identifier(s) newly tied");
    if (r.action) parts.push(r.action + (r.target ? " " + r.target : ""));
    if (r.protocol_version) parts.push("protocol " + (r.protocol_id || "") + " v" + r.protocol_version);
    return parts.join(" · ");
  }

  // A short note for people; the field paths and codes are in the technical "Detail" column.
  function note(e) {
    const r = rec(e);
    if (!e.record) return el("span", { className: "pruned" }, ["past retention"]);
    if (r.human_decision) {
      const h = r.human_decision;
      return h.status === "referred" ? "referred to a person to decide" : "a person decided: " + words(h.choice);
    }
    if (r.kind === "identity_linked") return "two records of one child joined";
    if (r.action) return words(r.action.replace(/[.]/g, " "));
    return r.reason || "";
  }

  // A rule's id, linked to its row in the protocol in force.
  function ruleLink(id) {
    if (!id) return "";
    const a = el("a", { className: "rule", href: "#", title: "Show this rule in the protocol" }, [id]);
    a.addEventListener("click", (ev) => { ev.preventDefault(); run(() => openRule(id)); });
    return a;
  }

  function explainLink(decisionId) {
    if (!decisionId) return "";
    const b = el("button", { type: "button", className: "small", title: "Why this was decided, and whether " +
      "today's protocol decides the same" }, ["Explain"]);
    b.dataset.decision = decisionId;
    b.addEventListener("click", () => run(() => explainDecision(decisionId)));
    return b;
  }

  // What was shared, by class in words (the API's `shared`, as the subject access report gives it).
  function shared(d) {
    const groups = d.shared || [];
    if (!groups.length && !(d.masked || []).length) return list(d.fields_released);
    const items = groups.map(([cls, fields]) => el("li", {}, [el("b", {}, [cls + ": "]), fields.join(", ")]));
    if ((d.masked || []).length) items.push(el("li", {}, [el("b", {}, ["Partly shown: "]), d.masked.join(", ")]));
    return el("div", {}, [eventWords(d.event_type), el("ul", { className: "fields" }, items)]);
  }

  const ENTRY_COLUMNS = [
    ["Seq", (e) => e.seq, "tech"], ["Time", when], ["What happened", kindWords], ["By", (e) => rec(e).actor, "tech"],
    ["Child", (e) => tokenLink(rec(e).subject)], ["Agency", (e) => words(rec(e).agency)],
    ["Recipient", (e) => recipient(rec(e).subscriber)], ["Event", (e) => eventWords(rec(e).event_type)],
    ["Rule", (e) => ruleLink(rec(e).rule_id)], ["Consent", (e) => overrideMark(rec(e).consent_override)],
    ["Note", note], ["Detail", detail, "tech"],
  ];

  const DISCLOSURE_COLUMNS = [
    ["Shared on", (d) => localTime(d.delivered_at || d.decided_at)], ["Recipient", (d) => recipient(d.subscriber)],
    ["Child", (d) => tokenLink(d.subject)], ["What was shared", shared], ["Rule", (d) => ruleLink(d.rule_id)],
    ["Lawful basis", (d) => (d.basis || d.lawful_basis || []).join("; ")],
    ["Consent", (d) => overrideMark(d.consent_override) || el("span", { className: "count" }, ["not overridden"])],
    ["Read", (d) => d.read_at ? localTime(d.read_at) : "not yet read"], ["Why", (d) => explainLink(d.decision_id)],
    ["Purpose", (d) => d.purpose, "tech"], ["Fields released", (d) => list(d.fields_released), "tech"],
    ["Masked", (d) => list(d.fields_masked), "tech"], ["Withheld", (d) => list(d.fields_withheld), "tech"],
    ["Protocol version", (d) => d.protocol_version, "tech"], ["Decision", (d) => d.decision_id, "tech"],
  ];

  // --- views ----------------------------------------------------------------------------------------------------
  function toIso(local) { return local ? new Date(local).toISOString() : ""; }

  async function search(more) {
    if (!more) {
      const form = new FormData($("search-form"));
      searchParams = new URLSearchParams();
      for (const [name, value] of form.entries()) {
        const v = String(value).trim();
        if (v) searchParams.set(name, name === "since" || name === "until" ? toIso(v) : v);
      }
      $("search-results").replaceChildren();
    }
    const params = new URLSearchParams(searchParams);
    params.set("limit", "100");
    if (more && nextBefore) params.set("before_seq", String(nextBefore));
    const page = await api("/v1/ig/search?" + params.toString());
    learnWords(page);
    nextBefore = page.next_before_seq;
    $("search-more").hidden = !nextBefore;
    $("search-results").append(table(ENTRY_COLUMNS, page.entries, more ? "No older records." : "No records match."));
    const shown = $("search-results").querySelectorAll("tbody tr").length;
    $("search-count").textContent = shown + " record(s) shown, newest first.";
  }

  async function openTimeline(token) {
    selectTab("timeline");
    $("timeline-form").elements.subject.value = token;
    const data = await api("/v1/ig/children/" + encodeURIComponent(token) + "/timeline");
    learnWords(data);
    timelineToken = data.subject;
    $("report-open").hidden = false;
    const others = (data.tokens || []).filter((t) => t !== data.subject);
    $("timeline-title").textContent = "Child " + data.subject + ": " + data.entries.length + " record(s), " +
      data.disclosures.length + " disclosure(s)" +
      (others.length ? "; also recorded under " + others.join(", ") + " (the identity register ties them)" : "");
    $("timeline-disclosures").replaceChildren(el("h3", {}, ["Disclosures"]),
      table(DISCLOSURE_COLUMNS, data.disclosures, "Nothing about this child has been shared."));
    $("timeline-results").replaceChildren(el("h3", {}, ["Timeline (oldest first)"]),
      table(ENTRY_COLUMNS, data.entries, "No records about this child."));
  }

  // Disclosures to one subscriber, oldest first, a page at a time; the count is the store's total, not the page's.
  let disclosuresNext = null;
  let disclosuresName = null;
  // Find a child: the server computes the tokens and records the lookup; identifiers leave the form once sent.
  const IDENTIFIER_FIELDS = ["nhs_number", "upn", "la_child_id", "la_system", "family_name", "given_name",
    "birth_date", "postcode"];
  async function findChild() {
    const form = $("find-form");
    const body = {};
    for (const name of ["reason", "reference", ...IDENTIFIER_FIELDS]) {
      const v = String(form.elements[name].value).trim();
      if (v) body[name] = v;
    }
    for (const name of IDENTIFIER_FIELDS) form.elements[name].value = "";
    $("find-result").textContent = "";
    const found = await api("/v1/ig/children/find", { method: "POST", body: JSON.stringify(body) });
    $("find-result").textContent = "Found by " + found.matched_by.join(", ").replace(/_/g, " ") + ": " +
      (found.recorded ? "records held under " + found.tokens_with_records.length + " token(s)."
        : "nothing is recorded about this child.") + (found.note ? " Note: " + found.note + "." : "");
    await openTimeline(found.subject);
  }

  // --- the subject access report, inside the page: printable (A4) and downloadable -------------------------------
  let timelineToken = null;
  let reportHtml = null;
  async function openReport() {
    reportHtml = await api("/v1/ig/children/" + encodeURIComponent(timelineToken) + "/report", {}, "text");
    // srcdoc keeps this page's Content-Security-Policy: no script runs in it; its one style is allowed by hash
    $("report-frame").srcdoc = reportHtml;
    $("report").hidden = false;
    $("report").scrollIntoView();
  }

  function downloadReport() {
    const url = URL.createObjectURL(new Blob([reportHtml], { type: "text/html" }));
    const a = el("a", { href: url, download: "subject-access-report.html" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  function closeReport() {
    $("report").hidden = true;
    $("report-frame").srcdoc = "";
    reportHtml = null;
  }

  async function explainDecision(decisionId) {
    const text = await api("/v1/ig/policy/decisions/" + encodeURIComponent(decisionId) + "/explain?format=text",
      {}, "text");
    $("explain-text").textContent = text;
    $("explain").hidden = false;
    $("explain").scrollIntoView();
  }

  async function openRule(id) {
    selectTab("protocol", false);
    await protocolInForce();
    const row = $("protocol-rules").querySelector("tr[data-rule='" + CSS.escape(id) + "']");
    if (row) { row.classList.add("highlight"); row.scrollIntoView({ block: "center" }); }
  }

  async function subscriberDisclosures(name, more) {
    const params = new URLSearchParams({ limit: "500" });
    if (more && disclosuresNext != null) params.set("after_seq", String(disclosuresNext));
    const data = await api("/v1/ig/subscribers/" + encodeURIComponent(name) + "/disclosures?" + params.toString());
    if (data.recipient) recipientNames[data.subscriber] = data.recipient;
    learnWords(data);
    disclosuresName = name;
    disclosuresNext = data.next_after_seq;
    $("disclosures-more").hidden = disclosuresNext == null;
    if (!more) {
      $("disclosures-results").replaceChildren(el("p", { className: "count", id: "disclosures-count" }, [""]));
    }
    $("disclosures-results").append(table(DISCLOSURE_COLUMNS, data.disclosures, more ? "No more disclosures." :
      "Nothing has been disclosed to this subscriber."));
    const shown = $("disclosures-results").querySelectorAll("tbody tr").length;
    $("disclosures-count").textContent = data.total + " disclosure(s) to " + (data.recipient || data.subscriber) +
      (data.total > shown ? " (the oldest " + shown + " shown)" : "");
  }

  async function deadLetters() {
    const data = await api("/v1/ig/deadletters");
    const columns = [
      ["Seq", (e) => e.seq], ["Time", when], ["Agency", (e) => rec(e).agency], ["System", (e) => rec(e).system],
      ["Where", (e) => [rec(e).position, rec(e).field].filter(Boolean).join(" ")], ["Reason", (e) => rec(e).reason],
      ["Dead letter", (e) => rec(e).deadletter_id || ""],
      ["Reprocessed", (e) => e.reprocessed_at || ""],
    ];
    $("deadletters-results").replaceChildren(table(columns, data.deadletters, "No dead letters."));
  }

  async function protocols() {
    const data = await api("/v1/ig/protocols");
    const columns = [["Seq", (e) => e.seq], ["Time", when], ["Protocol", (e) => rec(e).protocol_id],
      ["Version", (e) => rec(e).protocol_version], ["Previous", (e) => rec(e).previous_version],
      ["By", (e) => rec(e).actor], ["File SHA-256", (e) => rec(e).content_sha256],
      ["Permission changes", (e) => permissionChanges(rec(e).permission_changes)]];
    $("protocols-results").replaceChildren(table(columns, data.history, "No protocol changes recorded."));
  }

  // The static permission diff a protocol_change carries (broker/policy/change.py): each path whose outcome can
  // change, per subscriber and event type, and under which facts. Text only (codes and paths).
  function permissionChanges(diff) {
    if (!diff) return "";
    if (!diff.known) return "not known (no earlier file kept)";
    if (!diff.changes) return "none";
    const rows = diff.rows.map((r) => `${r.subscriber} ${r.event_type} ${r.path || "(the event)"}: ${r.from} -> ${r.to}`
      + (Object.keys(r.when).length ? ` when ${Object.entries(r.when).map(([k, v]) => `${k} in ${v.join("|")}`).join(", ")}` : ""));
    return `${diff.changes} change(s)${diff.truncated ? " (first " + rows.length + ")" : ""}: ${rows.join("; ")}`;
  }

  // --- the protocol in force: the agreement's furniture, then the rules -----------------------------------------
  function dl(pairs) {
    const list = el("dl", { className: "agreement" });
    for (const [term, value] of pairs) {
      if (value == null || value === "" || (Array.isArray(value) && !value.length)) continue;
      list.append(el("dt", {}, [term]));
      for (const item of Array.isArray(value) ? value : [value]) list.append(el("dd", {}, [item]));
    }
    return list;
  }

  function agreement(g, names) {
    if (!g) return [el("p", { className: "error" }, ["This protocol states no controllers, DPIA, appropriate policy " +
      "documents or retention (no governance section)."])];
    const j = g.joint_controllers;
    const roles = {};
    for (const r of g.roles) (roles[r.partner] = roles[r.partner] || []).push(r.role.toUpperCase().replace(
      "CALDICOTT_GUARDIAN", "Caldicott guardian").replace("IG_LEAD", "IG lead") + ": " + r.contact);
    return [
      el("h3", {}, ["Controllers and accountability"]),
      table([["Partner", (c) => names[c.partner] || c.partner], ["Controller for", (c) => c.controller_for],
        ["DPO, SIRO, Caldicott guardian", (c) => (roles[c.partner] || []).join(" · ")]], g.controllers, "None."),
      dl([
        ["Joint controllers (UK GDPR Art 26)", j ? j.partners.join(", ") + " — " + j.arrangement : null],
        ["Joint contact point", j ? j.contact_point : null],
        ["DPIA", g.dpia.reference + ", approved " + g.dpia.approved_on + " by " + g.dpia.approved_by +
          (g.dpia.next_review ? "; next review " + g.dpia.next_review : "")],
        ["Appropriate policy documents", g.appropriate_policy_documents.map(
          (a) => a.partner + ": " + a.reference + " — " + a.covers.join(", "))],
        ["Next review", g.review.next_review],
        ["Review triggers", g.review.triggers],
        ["Breach reporting", g.breach.report_to + " within " + g.breach.within_hours + " hours — " + g.breach.route],
        ["Subject rights", g.subject_rights.contact + " — " + g.subject_rights.route],
      ]),
      el("h3", {}, ["Retention per class"]),
      table([["Classes", (r) => r.classifications.join(", ")], ["Kept for", (r) => r.keep_for],
        ["From", (r) => r.from.replace(/_/g, " ")], ["Note", (r) => r.note || ""]], g.retention, "None."),
    ];
  }

  async function protocolInForce() {
    const p = await api("/v1/ig/policy/protocol");
    $("protocol-head").textContent = p.title + " — " + p.id + " version " + p.version + ", in force from " +
      p.effective_from + (p.review_by ? ", review by " + p.review_by : "") + (p.owner ? "; owner: " + p.owner : "");
    learnWords({ bases: p.bases });
    const partnerOf = {};
    for (const x of p.partners || []) partnerOf[x.id] = x.name;
    $("protocol-agreement").replaceChildren(...agreement(p.governance, partnerOf));
    const to = (name) => {
      const sub = (p.subscribers || []).find((s) => s.name === name);
      return sub && partnerOf[sub.partner] ? partnerOf[sub.partner] + " (" + name + ")" : name;
    };
    const law = (codes) => el("ul", { className: "fields" }, codes.map((c) => el("li", { title: c },
      [basisNames[c] || c])));
    $("protocol-rules").replaceChildren(table([["Rule", (r) => el("div", {}, [el("b", {}, [r.id]),
      r.description ? el("div", { className: "count" }, [r.description]) : ""])],
    ["To", (r) => r.subscribers.map(to).join(", ")],
      ["Events", (r) => r.event_types.map(eventWords).join("; ")], ["Purpose", (r) => words(r.purpose)],
      ["Discloser's basis", (r) => law(r.lawful_basis)], ["Recipient's basis", (r) => law(r.recipient_basis)],
      ["Decided by", (r) => r.requires_human_decision ? "a person: " + r.requires_human_decision : "the rule"]],
    p.rules, "No rules.", (r) => ({ "data-rule": r.id })));
  }

  // --- disclosure digest (engineer E): the owning agency is told what of its data went to whom ---------------------
  const DIGEST_COLUMNS = [
    ["Consent", (d) => overrideMark(d.consent_override)],
    ["Shared", (d) => localTime(d.delivered_at || d.decided_at)],
    ["Recipient", (d) => d.recipient_partner ? d.recipient_partner + " (" + words(d.recipient) + ")"
      : recipient(d.recipient)],
    ["Event", (d) => eventWords(d.event_type)],
    ["Rule", (d) => d.rule_id ? ruleLink(d.rule_id) : ""],
    ["Lawful basis", (d) => (d.lawful_basis_words || []).join("; ")],
    ["Read", (d) => d.read_at ? localTime(d.read_at) + (d.read_via === "kafka" ? " (Kafka)" : "") : "not yet read"],
    ["Child", (d) => tokenLink(d.child), "tech"],
    ["Fields released", (d) => list(d.fields_released), "tech"],
    ["Decision", (d) => d.decision_id, "tech"],
  ];

  const DIGEST_ROLE_WORDS = { ig_lead: "IG lead", dpo: "data protection officer" };

  async function digestPartners() {
    const select = $("digest-partner");
    if (select.options.length) return;
    const data = await api("/v1/ig/digests");
    for (const p of data.partners) select.append(el("option", { value: p.id }, [p.name]));
    const form = $("digest-form");
    if (!form.elements.date.value) form.elements.date.value = new Date().toISOString().slice(0, 10);
  }

  function digestPath(format) {
    const form = $("digest-form");
    const params = new URLSearchParams({ date: form.elements.date.value, format: format,
      time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone || "Europe/London" });
    return "/v1/ig/digests/" + encodeURIComponent(form.elements.partner.value) + "?" + params.toString();
  }

  async function showDigest() {
    const d = await api(digestPath("json"));
    learnWords(d);  // its `bases`: the words of each basis and gateway the rows cite
    const s = d.summary;
    $("digest-summary").textContent = s.disclosures + " disclosure(s) of " + d.partner.name + "'s data on " + d.date +
      " (" + d.time_zone + "), " + s.consent_overrides + " with a consent override; for its " + (DIGEST_ROLE_WORDS[d.to.role] || words(d.to.role)) +
      " (" + d.to.contact + ").";
    $("digest-results").replaceChildren(table(DIGEST_COLUMNS, d.disclosures, "Nothing of this partner's data was " +
      "shared on this day.", (row) => ({ "data-decision": row.decision_id })));
  }

  async function downloadDigest() {
    const text = await api(digestPath("csv"), {}, "text");
    const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    const form = $("digest-form");
    const a = el("a", { href: url, download: "disclosure-digest-" + form.elements.partner.value + "-" +
      form.elements.date.value + ".csv" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  function selectTab(name, load) {
    for (const button of $("tabs").querySelectorAll("button")) {
      button.classList.toggle("active", button.dataset.tab === name);
    }
    for (const section of document.querySelectorAll(".tab")) { section.hidden = section.id !== "tab-" + name; }
    if (name === "deadletters") run(deadLetters);
    if (name === "protocols") run(protocols);
    if (name === "digest") run(digestPartners);
    if (name === "protocol" && load !== false) run(protocolInForce);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const select = $("kind-select");
    for (const kind of KINDS) select.append(el("option", { value: kind }, [KIND_WORDS[kind] || kind]));
    $("show-tech").addEventListener("change", (ev) => document.body.classList.toggle("show-tech", ev.target.checked));
    $("report-open").addEventListener("click", () => run(openReport));
    $("report-print").addEventListener("click", () => $("report-frame").contentWindow.print());
    $("report-download").addEventListener("click", downloadReport);
    $("report-close").addEventListener("click", closeReport);
    $("explain-close").addEventListener("click", () => { $("explain").hidden = true; });
    $("login-form").addEventListener("submit", signIn);
    $("signout").addEventListener("click", () => signOut("Signed out."));
    $("verify-again").addEventListener("click", () => run(async () => showVerification(
      await api("/v1/ig/verification"))));
    $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); run(() => search(false)); });
    $("search-more").addEventListener("click", () => run(() => search(true)));
    $("timeline-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      run(() => openTimeline($("timeline-form").elements.subject.value.trim()));
    });
    $("find-form").addEventListener("submit", (ev) => { ev.preventDefault(); run(findChild); });
    $("disclosures-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      run(() => subscriberDisclosures($("disclosures-form").elements.name.value.trim(), false));
    });
    $("disclosures-more").addEventListener("click", () => run(() => subscriberDisclosures(disclosuresName, true)));
    $("deadletters-refresh").addEventListener("click", () => run(deadLetters));
    $("digest-form").addEventListener("submit", (ev) => { ev.preventDefault(); run(showDigest); });
    $("digest-csv").addEventListener("click", () => run(downloadDigest));
    for (const button of $("tabs").querySelectorAll("button")) {
      button.addEventListener("click", () => selectTab(button.dataset.tab));
    }
  });
})();
