// scopegate web UI: vanilla JavaScript, no dependencies. Every value shown
// comes from the API and is inserted as text (textContent), never as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "scopegate.token";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  // ---- small DOM helpers ---------------------------------------------------

  // el("tag.class", {attr: value}, child, ...): children are nodes or text.
  function el(spec, attrs, ...children) {
    const [tag, ...classes] = spec.split(".");
    const e = document.createElement(tag);
    if (classes.length) e.className = classes.join(" ");
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k === "dataset") Object.assign(e.dataset, v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    append(e, children);
    return e;
  }

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    append(e, children);
    return e;
  }

  function append(e, children) {
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  function clear(e) {
    while (e.firstChild) e.removeChild(e.firstChild);
    return e;
  }

  function chips(list, cls) {
    if (!list || list.length === 0) return el("span.muted", { text: "none" });
    return el("span.chips", {}, list.map((s) => el("span.chip" + (cls ? "." + cls : ""), { text: s })));
  }

  function badge(allow) {
    return el("span.badge." + (allow ? "allow" : "deny"), { text: allow ? "allow" : "deny" });
  }

  function fmtTime(ts) {
    if (!ts) return "";
    // 2026-11-23T18:16:05.881891338Z -> 2026-11-23 18:16:05
    return String(ts).replace("T", " ").replace(/\.\d+/, "").replace("Z", "");
  }

  // datetime-local value (UTC by the labels) -> RFC 3339
  function toRFC3339(v) {
    if (!v) return "";
    return v.length === 16 ? v + ":00Z" : v + "Z";
  }

  function setState(view, state) {
    $("#view-" + view).dataset.state = state;
  }

  // ---- auth and API ----------------------------------------------------------

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function showTokenState() {
    $("#token-state").textContent = token() ? "token set for this tab" : "no token";
  }

  class APIError extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(e.message || "HTTP " + status);
      this.status = status;
      this.code = e.code || "";
      this.field = e.field || "";
      this.body = body;
    }
  }

  async function api(path, opts) {
    opts = opts || {};
    const headers = { Accept: "application/json" };
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    const resp = await fetch(path, {
      method: opts.method || "GET",
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      cache: "no-store",
      credentials: "same-origin",
    });
    let body = null;
    try {
      body = await resp.json();
    } catch (_) {
      body = null;
    }
    if (!resp.ok && !opts.keepErrors) throw new APIError(resp.status, body);
    return { status: resp.status, body };
  }

  function banner(msg) {
    const b = $("#banner");
    if (!msg) {
      b.hidden = true;
      return;
    }
    b.textContent = msg;
    b.hidden = false;
  }

  function explainError(err) {
    if (err instanceof APIError) {
      if (err.status === 401) return "The server has authentication on: paste an admin token above and press “Use token”.";
      if (err.status === 403) return "This token may not see this view: it needs the admin role.";
      return err.message + (err.code ? " (" + err.code + ")" : "");
    }
    return "Cannot reach scopegate: " + err.message;
  }

  function fail(view, err) {
    setState(view, "error");
    banner(explainError(err));
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== "" && v !== undefined && v !== null) q.set(k, v);
    const s = q.toString();
    return s ? "?" + s : "";
  }

  // ---- views -------------------------------------------------------------------

  const views = { decisions: loadDecisions, catalog: loadCatalog, try: loadTry, advisor: loadAdvice };
  const loaded = {};

  function show(name) {
    if (!views[name]) name = "decisions";
    for (const v of Object.keys(views)) $("#view-" + v).hidden = v !== name;
    for (const a of $$("#tabs a")) a.classList.toggle("active", a.dataset.view === name);
    banner("");
    if (!loaded[name]) {
      loaded[name] = true;
      views[name]();
    }
  }

  // ---- decisions ----------------------------------------------------------

  function filterParams() {
    const f = $("#filters");
    return {
      subject: f.subject.value.trim(),
      client_id: f.client_id.value.trim(),
      scope: f.scope.value.trim(),
      reason: f.reason.value,
      allow: f.allow.value,
      from: toRFC3339(f.from.value),
      to: toRFC3339(f.to.value),
      limit: f.limit.value,
    };
  }

  async function loadDecisions() {
    setState("decisions", "loading");
    loadChain();
    fetchCatalog().catch(() => {}); // scope suggestions for the filter only
    try {
      const { body } = await api("/v1/admin/decisions" + query(filterParams()));
      renderDecisions(body);
      setState("decisions", "ready");
    } catch (err) {
      clear($("#decisions tbody"));
      $("#decisions-summary").textContent = "";
      fail("decisions", err);
    }
  }

  async function loadChain() {
    const c = $("#chain");
    c.className = "chain";
    c.textContent = "Checking the hash chain…";
    try {
      const { body } = await api("/v1/admin/decisions/verify");
      clear(c);
      if (body.ok) {
        c.classList.add("ok");
        c.dataset.ok = "true";
        append(c, [
          el("strong", { text: "✔ Hash chain verified" }),
          ` — ${body.records} record(s) in ${body.files} file(s), `,
          body.records === 0 ? "empty log" : body.starts_at_genesis ? "starting at the genesis record" : "starting after deleted (retention) files",
          body.last_hash ? el("span.muted", { text: " · last hash " + body.last_hash.slice(0, 16) + "…" }) : null,
        ]);
      } else {
        c.classList.add("broken");
        c.dataset.ok = "false";
        const b = body.break;
        append(c, [
          el("strong", { text: "✘ Hash chain broken" }),
          ` at ${b.file}:${b.line} (${b.kind}): ${b.detail}. ${body.records} record(s) verified before it.`,
        ]);
      }
    } catch (err) {
      c.classList.add("broken");
      c.dataset.ok = "unknown";
      c.textContent =
        err instanceof APIError && (err.status === 401 || err.status === 403)
          ? "Chain not verified: this needs an admin token."
          : "Chain not verified: " + explainError(err);
    }
  }

  function actionText(ev) {
    const inp = ev.input || {};
    const res = ev.result || {};
    if (inp.method || inp.path) {
      const r = `${inp.method || ""} ${inp.path || ""}`.trim();
      return res.action ? `${r} → ${res.action}` : r;
    }
    return inp.action || res.action || (inp.error ? "(invalid request)" : "");
  }

  function grantedOf(ev) {
    const inp = ev.input || {};
    if (Array.isArray(inp.granted_scopes)) return inp.granted_scopes;
    if (typeof inp.granted_scopes === "string") return inp.granted_scopes.split(" ").filter(Boolean);
    if (typeof inp.scope === "string") return inp.scope.split(" ").filter(Boolean);
    return [];
  }

  function renderDecisions(body) {
    const tbody = clear($("#decisions tbody"));
    const n = body.decisions.length;
    $("#decisions-summary").textContent =
      n === 0
        ? "No decision matches these filters."
        : `${n} decision(s), newest first${body.limited ? ` (limit ${body.limit} reached: narrow the filters or raise the limit)` : ""}.`;
    if (body.warnings && body.warnings.length) banner("Some lines could not be read: " + body.warnings.join("; "));
    for (const ev of body.decisions) {
      const granted = grantedOf(ev);
      const row = el(
        "tr.row",
        { tabindex: "0", dataset: { reason: ev.reason, allow: String(ev.allow), id: ev.decision_id } },
        el("td.nowrap", { text: fmtTime(ev.timestamp) }),
        el("td", {}, badge(ev.allow)),
        el("td", {}, el("code", { text: ev.reason })),
        el("td", { text: ev.subject || "" }),
        el("td", { text: ev.client_id || "" }),
        el("td", {}, el("code", { text: actionText(ev) })),
        el("td", {}, granted.length ? chips(granted) : el("span.muted", { text: "(default)" })),
      );
      appendExpandable(tbody, row, decisionDetail(ev));
    }
  }

  // appendExpandable adds row and, under it, a hidden detail row that a
  // click or Enter/Space on row shows and hides.
  function appendExpandable(tbody, row, content) {
    const detail = el("tr.detail-row", { hidden: true }, el("td", { colspan: "7" }, content));
    const toggle = () => {
      detail.hidden = !detail.hidden;
      row.classList.toggle("open", !detail.hidden);
    };
    row.addEventListener("click", toggle);
    row.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        toggle();
      }
    });
    tbody.append(row, detail);
  }

  function kv(rows) {
    return el(
      "dl.kv",
      {},
      rows.filter((r) => r && r[1] !== undefined && r[1] !== null && r[1] !== "").map(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]),
    );
  }

  function decisionDetail(ev) {
    const res = ev.result || {};
    const rev = ev.bundles && ev.bundles.scopegate ? ev.bundles.scopegate.revision : "";
    const explain = Array.isArray(res.explain) ? res.explain : [];
    return el(
      "div.decision-detail",
      {},
      el("div.explain", {}, el("h4", { text: "Explanation" }), explain.length ? el("ol", {}, explain.map((x) => el("li", { text: x }))) : el("p.muted", { text: "none recorded" }),
        res.remedy ? el("p.remedy", {}, el("strong", { text: "Remedy: " }), res.remedy) : null),
      kv([
        ["decision id", el("code", { text: ev.decision_id })],
        ["bundle revision", rev ? el("code", { text: rev }) : el("span.muted", { text: "none (no policy)" })],
        ["policy path", ev.path],
        ["required any of", res.required_any_of ? chips(res.required_any_of) : null],
        ["granted (effective)", res.granted_effective ? chips(res.granted_effective) : null],
        ["matched", res.matched ? chips(res.matched, "ok") : null],
        ["missing", res.missing && res.missing.length ? chips(res.missing, "bad") : null],
        ["unknown scopes", res.unknown_scopes && res.unknown_scopes.length ? chips(res.unknown_scopes, "bad") : null],
        ["requested by", ev.requested_by],
        ["masked", ev.masked && ev.masked.length ? chips(ev.masked) : null],
        ["hash", el("code.hash", { text: ev.hash })],
      ]),
      el("div.input", {}, el("h4", { text: "Input (as logged, secrets masked)" }), el("pre", { text: JSON.stringify(ev.input, null, 2) })),
    );
  }

  // ---- catalog -------------------------------------------------------------

  let catalog = null; // {scopes: [...], byName: {}}
  let actions = null; // /v1/admin/actions body, or null when not available

  async function fetchCatalog() {
    if (catalog) return catalog;
    const { body } = await api("/v1/scopes");
    catalog = body;
    catalog.byName = {};
    for (const s of body.scopes) catalog.byName[s.name] = s;
    const dl = clear($("#scope-names"));
    for (const s of body.scopes) dl.append(el("option", { value: s.name }));
    return catalog;
  }

  async function fetchActions() {
    if (actions) return actions;
    try {
      actions = (await api("/v1/admin/actions")).body;
    } catch (err) {
      actions = { error: explainError(err), named: [], routes: [], by_scope: {} };
    }
    return actions;
  }

  async function loadCatalog() {
    setState("catalog", "loading");
    try {
      const [cat, act] = await Promise.all([fetchCatalog(), fetchActions()]);
      const sensitive = cat.scopes.filter((s) => s.sensitive).length;
      $("#catalog-summary").textContent =
        `${cat.count} scopes, ${sensitive} sensitive; default scope ${cat.default_scope}; ` +
        `${act.named.length} named actions and ${act.routes.length} routes in the policy; revision ${cat.bundle_revision}.`;
      if (act.error) banner("Policy actions unavailable: " + act.error);
      drawGraph(cat);
      renderScopeTable(cat);
      setState("catalog", "ready");
    } catch (err) {
      fail("catalog", err);
    }
  }

  // Layered layout: a scope's column is its inclusion depth (the longest
  // chain of scopes including it), broadest on the left. Each resource gets
  // a horizontal band; an edge that skips a column passes through a
  // placeholder slot so it never runs through a node.
  function layout(cat) {
    const scopes = cat.scopes;
    const depth = {};
    const depthOf = (name, seen) => {
      if (depth[name] !== undefined) return depth[name];
      const s = cat.byName[name];
      let d = 0;
      if (s && !seen.has(name)) {
        seen.add(name);
        for (const p of s.included_by) if (cat.byName[p]) d = Math.max(d, depthOf(p, seen) + 1);
        seen.delete(name);
      }
      depth[name] = d;
      return d;
    };
    scopes.forEach((s) => depthOf(s.name, new Set()));
    const order = {};
    scopes.forEach((s, i) => (order[s.name] = i));

    const groups = [];
    const groupOf = {};
    for (const s of scopes) {
      const key = s.resource || s.name;
      if (!groupOf[key]) {
        groupOf[key] = { key, items: [] };
        groups.push(groupOf[key]);
      }
      groupOf[key].items.push(s);
    }

    const edges = [];
    for (const s of scopes) for (const c of s.includes) if (cat.byName[c]) edges.push({ from: s.name, to: c, via: [] });

    const slots = {}; // name or dummy id -> {col, group}
    const cols = {}; // group key -> [[items per column]]
    for (const g of groups) cols[g.key] = [];
    const put = (gkey, col, item) => {
      const c = cols[gkey];
      while (c.length <= col) c.push([]);
      c[col].push(item);
    };
    for (const s of scopes) {
      const gkey = s.resource || s.name;
      put(gkey, depth[s.name], { id: s.name, order: order[s.name], parents: s.included_by.filter((p) => cat.byName[p]) });
    }
    for (const e of edges) {
      const gkey = cat.byName[e.to].resource || e.to;
      let prev = e.from;
      for (let d = depth[e.from] + 1; d < depth[e.to]; d++) {
        const id = `dummy:${e.from}>${e.to}@${d}`;
        put(gkey, d, { id, order: order[e.to] - 0.5, parents: [prev], dummy: true });
        e.via.push(id);
        prev = id;
      }
      e.last = prev;
    }
    // Order each column by the mean position of its parents (barycenter).
    const pos = {};
    for (const g of groups) {
      cols[g.key].forEach((items, col) => {
        const bary = (it) => {
          const ps = it.parents.filter((p) => pos[p] !== undefined);
          return ps.length ? ps.reduce((a, p) => a + pos[p], 0) / ps.length : it.order;
        };
        items.forEach((it) => (it.bary = col === 0 ? it.order : bary(it)));
        items.sort((a, b) => a.bary - b.bary || a.order - b.order);
        items.forEach((it, i) => (pos[it.id] = i));
      });
    }
    // Place: bands stacked vertically, columns centred in their band.
    const W = 210, H = 30, colGap = 84, rowGap = 12, bandGap = 18, pad = 14;
    const nCols = Math.max(1, ...Object.values(depth).map((d) => d + 1));
    const place = {};
    let y = pad;
    for (const g of groups) {
      const rows = Math.max(...cols[g.key].map((c) => c.length));
      const bandH = rows * H + (rows - 1) * rowGap;
      cols[g.key].forEach((items, col) => {
        const h = items.length * H + (items.length - 1) * rowGap;
        items.forEach((it, i) => {
          place[it.id] = { x: pad + col * (W + colGap), y: y + (bandH - h) / 2 + i * (H + rowGap), dummy: !!it.dummy };
        });
      });
      g.y = y;
      g.h = bandH;
      y += bandH + bandGap;
    }
    return { place, edges, groups, W, H, width: pad * 2 + nCols * W + (nCols - 1) * colGap, height: y - bandGap + pad, nCols };
  }

  function drawGraph(cat) {
    const g = $("#graph");
    clear(g);
    const L = layout(cat);
    g.setAttribute("viewBox", `0 0 ${L.width} ${L.height}`);
    g.setAttribute("width", L.width);
    g.setAttribute("height", L.height);
    g.append(
      svg("defs", {},
        svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
          svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }))),
    );
    L.groups.forEach((grp, i) => {
      if (i % 2 === 0) g.append(svg("rect", { class: "band", x: 0, y: grp.y - 8, width: L.width, height: grp.h + 16 }));
    });
    const edgeLayer = svg("g", { class: "edges" });
    const nodeLayer = svg("g", { class: "nodes" });
    g.append(edgeLayer, nodeLayer);
    const mid = (p) => p.y + L.H / 2;
    for (const e of L.edges) {
      const pts = [];
      const a = L.place[e.from];
      pts.push([a.x + L.W, mid(a)]);
      for (const v of e.via) {
        const d = L.place[v];
        pts.push([d.x, mid(d)], [d.x + L.W, mid(d)]);
      }
      const b = L.place[e.to];
      pts.push([b.x - 2, mid(b)]);
      let d = `M ${pts[0][0]} ${pts[0][1]}`;
      for (let i = 1; i < pts.length; i++) {
        const [x0, y0] = pts[i - 1];
        const [x1, y1] = pts[i];
        if (y0 === y1 || i % 2 === 0) d += ` L ${x1} ${y1}`;
        else {
          const dx = (x1 - x0) / 2;
          d += ` C ${x0 + dx} ${y0}, ${x1 - dx} ${y1}, ${x1} ${y1}`;
        }
      }
      edgeLayer.append(svg("path", { d, class: "edge", "marker-end": "url(#arrow)", "data-from": e.from, "data-to": e.to }));
    }
    for (const s of cat.scopes) {
      const p = L.place[s.name];
      const cls = ["node"];
      if (s.sensitive) cls.push("sensitive");
      if (s.default) cls.push("default");
      const node = svg(
        "g",
        { class: cls.join(" "), transform: `translate(${p.x},${p.y})`, tabindex: "0", role: "button", "data-scope": s.name },
        svg("title", { text: `${s.name}: ${s.description}${s.sensitive ? " (sensitive)" : ""}` }),
        svg("rect", { width: L.W, height: L.H, rx: 6, ry: 6 }),
        svg("text", { x: 10, y: L.H / 2 + 4.5, class: "label", text: s.name }),
        s.sensitive ? svg("text", { x: L.W - 9, y: L.H / 2 + 5, class: "flag", "text-anchor": "end", text: "⚠" }) : null,
      );
      node.addEventListener("click", () => selectScope(s.name));
      node.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          selectScope(s.name);
        }
      });
      nodeLayer.append(node);
    }
  }

  function renderScopeTable(cat) {
    const tbody = clear($("#scope-table tbody"));
    for (const s of cat.scopes) {
      const row = el(
        "tr.row",
        { tabindex: "0", dataset: { scope: s.name } },
        el("td", {}, el("code", { text: s.name })),
        el("td", { text: s.description }),
        el("td", {}, s.includes.length ? chips(s.includes) : el("span.muted", { text: "—" })),
        el("td", {}, s.sensitive ? el("span.badge.sensitive", { text: "sensitive" }) : null, s.default ? el("span.badge.neutral", { text: "default" }) : null),
      );
      row.addEventListener("click", () => selectScope(s.name));
      tbody.append(row);
    }
  }

  async function selectScope(name) {
    for (const n of $$("#graph .node")) {
      n.classList.toggle("selected", n.dataset.scope === name);
      n.classList.remove("related");
    }
    const detail = $("#scope-detail");
    detail.dataset.scope = name;
    detail.dataset.state = "loading";
    try {
      const [{ body: s }, act] = await Promise.all([api("/v1/scopes/" + encodeURIComponent(name)), fetchActions()]);
      if (detail.dataset.scope !== name) return; // another click won
      const related = new Set([...s.includes, ...s.included_by]);
      for (const n of $$("#graph .node")) n.classList.toggle("related", related.has(n.dataset.scope));
      for (const e of $$("#graph .edge")) e.classList.toggle("active", e.dataset.from === name || e.dataset.to === name);
      const use = (act.by_scope || {})[name] || { needed_by: [], allows: [], routes: [] };
      const namedByName = {};
      for (const a of act.named || []) namedByName[a.name] = a;
      clear(detail);
      append(detail, [
        el("h3", {}, el("code", { text: s.name }), s.sensitive ? el("span.badge.sensitive", { text: "sensitive" }) : null, s.default ? el("span.badge.neutral", { text: "default" }) : null),
        el("p", { text: s.description }),
        kv([
          ["resource", s.resource],
          ["includes", chips(s.includes)],
          ["included by", el("span.included-by", {}, chips(s.included_by))],
          ["implies (closure)", chips(s.implies)],
          ["conferred by", chips(s.satisfied_by)],
        ]),
        el("h4", { text: "Policy actions that need it" }),
        act.error
          ? el("p.muted", { text: act.error })
          : use.needed_by.length
            ? el("ul.actions-needed", {}, use.needed_by.map((a) => el("li", {}, el("code", { text: a }), namedByName[a] ? " — " + namedByName[a].description : "")))
            : el("p.muted.actions-needed", { text: "No named action lists it; it is still an action of its own (action “" + s.name + "”)." }),
        use.allows.length > use.needed_by.length
          ? el("p", {}, "Also allows, through what it includes: ", chips(use.allows.filter((a) => !use.needed_by.includes(a))))
          : null,
        el("h4", { text: "Routes" }),
        use.routes.length
          ? el("ul.routes", {}, use.routes.map((r) => el("li", {}, el("code", { text: `${r.method} ${r.path}` }), " → ", el("code", { text: r.action }))))
          : el("p.muted", { text: "none" }),
      ]);
      detail.dataset.state = "ready";
    } catch (err) {
      clear(detail).append(el("p.error", { text: explainError(err) }));
      detail.dataset.state = "error";
    }
  }

  // ---- try it ----------------------------------------------------------------

  async function loadTry() {
    setState("try", "loading");
    try {
      await fetchCatalog();
    } catch (_) {
      // suggestions only: the panel works without them
    }
    const act = await fetchActions();
    const dl = clear($("#action-names"));
    for (const a of act.named || []) dl.append(el("option", { value: a.name, label: a.description }));
    if (catalog) for (const s of catalog.scopes) dl.append(el("option", { value: s.name, label: s.description }));
    setState("try", "ready");
  }

  function scopeList(text) {
    return text.split(/\s+/).filter(Boolean);
  }

  async function tryIt(ev) {
    ev.preventDefault();
    const f = $("#try-form");
    const out = clear($("#try-result"));
    out.dataset.state = "loading";
    const req = { granted_scopes: scopeList(f.granted.value) };
    if (f.elements.mode.value === "route") {
      req.method = f.elements.method.value;
      req.path = f.path.value.trim();
    } else {
      req.action = f.elements.action.value.trim();
    }
    if (f.subject.value.trim()) req.subject = f.subject.value.trim();
    if (f.client_id.value.trim()) req.client_id = f.client_id.value.trim();
    if (f.requested.value.trim()) req.requested_scopes = scopeList(f.requested.value);
    try {
      const { status, body } = await api("/v1/decide", { method: "POST", body: req, keepErrors: true });
      if (status === 401 || status === 403) throw new APIError(status, body);
      if (body && body.error) {
        append(out, [
          el("div.verdict.invalid", {}, el("span.big", { text: "rejected" }), el("code", { text: body.error.code })),
          el("p", { text: body.error.message + (body.error.field ? ` (field ${body.error.field})` : "") }),
          el("p.muted", { text: `HTTP ${status}; decision id ${body.decision_id || ""}` }),
        ]);
      } else {
        renderVerdict(out, body);
      }
      out.dataset.state = "ready";
      loaded.decisions = loaded.advisor = false; // the new decision is in the log
    } catch (err) {
      out.append(el("p.error", { text: explainError(err) }));
      out.dataset.state = "error";
    }
  }

  function renderVerdict(out, d) {
    append(out, [
      el("div.verdict." + (d.allow ? "allow" : "deny"), { dataset: { allow: String(d.allow), reason: d.reason } },
        el("span.big", { text: d.allow ? "ALLOW" : "DENY" }), el("code", { text: d.reason })),
      el("div.explain", {}, el("h4", { text: "Explanation" }), el("ol", {}, (d.explain || []).map((x) => el("li", { text: x })))),
      d.remedy ? el("p.remedy", {}, el("strong", { text: "Remedy: " }), d.remedy) : null,
      kv([
        ["action", d.action ? el("code", { text: d.action }) : null],
        ["route", d.route ? el("code", { text: d.route }) : null],
        ["required any of", chips(d.required_any_of)],
        ["granted (effective)", chips(d.granted_effective)],
        ["matched", chips(d.matched, "ok")],
        ["missing", d.missing && d.missing.length ? chips(d.missing, "bad") : null],
        ["narrowest", d.narrowest ? el("code", { text: d.narrowest }) : null],
        ["unknown scopes", d.unknown_scopes && d.unknown_scopes.length ? chips(d.unknown_scopes, "bad") : null],
        ["sensitive", d.sensitive ? el("span.badge.sensitive", { text: "needs a sensitive scope" }) : null],
        ["bundle revision", el("code", { text: d.bundle_revision || "" })],
        ["decision id", el("code", { text: d.decision_id })],
      ]),
    ]);
  }

  // ---- advisor -------------------------------------------------------------

  async function loadAdvice() {
    setState("advisor", "loading");
    const f = $("#advice-form");
    try {
      const { body } = await api(
        "/v1/admin/advice" + query({ from: toRFC3339(f.from.value), to: toRFC3339(f.to.value), client_id: f.client_id.value.trim() }),
      );
      renderAdvice(body);
      setState("advisor", "ready");
    } catch (err) {
      clear($("#advice tbody"));
      $("#advice-summary").textContent = "";
      fail("advisor", err);
    }
  }

  function renderAdvice(r) {
    const span = r.records ? ` between ${fmtTime(r.first_seen)} and ${fmtTime(r.last_seen)} UTC` : "";
    $("#advice-summary").textContent =
      `${r.records} decision(s)${span}; ${r.clients.length} client(s)` +
      (r.unattributed ? `; ${r.unattributed} decision(s) without a client_id are not attributed` : "") + ".";
    if (r.warnings && r.warnings.length) banner(r.warnings.join("; "));
    const tbody = clear($("#advice tbody"));
    for (const c of r.clients) {
      const row = el(
        "tr.row",
        { tabindex: "0", dataset: { client: c.client_id } },
        el("td", {}, el("strong", { text: c.client_id })),
        el("td.nowrap", { text: `${c.decisions} (${c.allowed} allowed, ${c.denied} denied)` }),
        el("td", {}, chips(c.granted)),
        el("td.needed", {}, c.needed.length ? chips(c.needed, "ok") : el("span.muted", { text: "nothing" })),
        el("td", {}, c.unused.length ? chips(c.unused, "bad") : el("span.muted", { text: "—" })),
        el("td", {}, c.over_broad.length ? chips(c.over_broad.map((o) => o.scope), "warn") : el("span.muted", { text: "—" })),
        el("td", {}, c.least_privilege ? el("span.badge.allow", { text: "least privilege" }) : el("span.badge.warn", { text: "narrow it" })),
      );
      appendExpandable(tbody, row, adviceDetail(c));
    }
  }

  function adviceDetail(c) {
    return el(
      "div.decision-detail",
      {},
      el("div.explain", {}, el("h4", { text: "Findings" }), el("ul.findings", {}, c.findings.map((x) => el("li", { text: x })))),
      kv([
        ["recommended scope string", c.recommended ? el("code", { text: c.recommended }) : el("span.muted", { text: "(none)" })],
        ["excess (would be taken away)", chips(c.excess, "bad")],
        ["sensitive excess", c.sensitive_excess.length ? chips(c.sensitive_excess, "bad") : null],
        ["not in the catalog", c.unknown && c.unknown.length ? chips(c.unknown, "bad") : null],
        ["requested by the app", c.requested.length ? chips(c.requested) : null],
        ["subjects", `${c.subject_count}: ${c.subjects.join(", ")}${c.subject_count > c.subjects.length ? ", …" : ""}`],
        ["seen", `${fmtTime(c.first_seen)} – ${fmtTime(c.last_seen)} UTC`],
      ]),
      el("div", {},
        el("h4", { text: "Allowed actions" }),
        c.actions.length
          ? el("table.mini", {}, el("thead", {}, el("tr", {}, el("th", { text: "action" }), el("th", { text: "times" }), el("th", { text: "narrowest scope" }), el("th", { text: "satisfied by (granted)" }))),
            el("tbody", {}, c.actions.map((a) => el("tr", {}, el("td", {}, el("code", { text: a.action })), el("td", { text: a.count }), el("td", {}, el("code", { text: a.narrowest })), el("td", {}, chips(a.matched))))))
          : el("p.muted", { text: "none" }),
        c.missing.length ? el("h4", { text: "Denied" }) : null,
        c.missing.length
          ? el("table.mini", {}, el("tbody", {}, c.missing.map((m) => el("tr", {}, el("td", {}, el("code", { text: m.action })), el("td", { text: m.reason }), el("td", { text: m.count + "×" }), el("td", {}, m.scope ? el("code", { text: "lacked " + m.scope }) : "")))))
          : null),
    );
  }

  // ---- wiring ----------------------------------------------------------------

  function reloadAll() {
    catalog = null;
    actions = null;
    for (const k of Object.keys(loaded)) loaded[k] = false;
    show(location.hash.slice(1));
  }

  // A blocked resource is a bug in this page: say so where tests look.
  document.addEventListener("securitypolicyviolation", (e) => {
    console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI);
  });

  document.addEventListener("DOMContentLoaded", () => {
    showTokenState();
    $("#token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const v = $("#token").value.trim();
      if (v) sessionStorage.setItem(TOKEN_KEY, v);
      $("#token").value = "";
      showTokenState();
      reloadAll();
    });
    $("#token-forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showTokenState();
      reloadAll();
    });
    $("#filters").addEventListener("submit", (e) => {
      e.preventDefault();
      banner("");
      loadDecisions();
    });
    $("#clear-filters").addEventListener("click", () => {
      $("#filters").reset();
      banner("");
      loadDecisions();
    });
    $("#advice-form").addEventListener("submit", (e) => {
      e.preventDefault();
      banner("");
      loadAdvice();
    });
    $("#try-form").addEventListener("submit", tryIt);
    for (const r of $$("#try-form input[name=mode]")) {
      r.addEventListener("change", () => {
        const route = $("#try-form").elements.mode.value === "route";
        $(".mode-route").hidden = !route;
        $(".mode-action").hidden = route;
      });
    }
    window.addEventListener("hashchange", () => show(location.hash.slice(1)));
    show(location.hash.slice(1));
  });
})();
