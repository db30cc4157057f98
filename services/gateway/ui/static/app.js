/* Stevedore web UI: fills the gateway's HTML pages from its JSON API.
 *
 * Plain browser JavaScript, no build step, no dependencies.  The page to run
 * is named by <body data-page>, its ids by the other data-* attributes.  Text
 * from the API is only ever set as textContent, never parsed as HTML.
 */
"use strict";
(function () {
  // Statuses and limits are the API's own, read from its contract (/openapi.json) before a page starts.
  let STATUSES, ACTIVE, TERMINAL, TASK_BUSY, BAR_ORDER, LIST_MAX, RUN_FIELDS;
  const LABELS = {};

  function learn(spec) {
    const schemas = spec.components.schemas;
    const executions = schemas.ExecutionStatus, tasks = schemas.TaskStatus;
    STATUSES = executions.enum;
    ACTIVE = new Set(executions["x-active"]);
    TERMINAL = new Set(executions["x-terminal"]);
    TASK_BUSY = new Set(tasks["x-busy"]);
    // the bar: ended executions, then running ones; the queued rest is its empty part
    BAR_ORDER = [...executions["x-terminal"], ...executions["x-active"].slice(1)];
    for (const status of [...STATUSES, ...tasks.enum]) {
      LABELS[status] = TASK_BUSY.has(status) ? "In progress" : status[0] + status.slice(1).toLowerCase();
    }
    const limit = spec.paths["/result/"].get.parameters.find((p) => p.name === "limit");
    LIST_MAX = limit.schema.maximum;
    RUN_FIELDS = schemas.RunRequest.properties;
    for (const select of document.querySelectorAll("select[data-statuses]")) {
      for (const status of STATUSES) select.append(h("option", {text: status}));
    }
    for (const span of document.querySelectorAll("[data-range]")) {
      const field = numeric(RUN_FIELDS[span.dataset.range]);
      if (field) span.textContent = `(${field.minimum}–${field.maximum})`;
    }
  }

  /* A RUN field's numeric schema ({type, minimum, maximum}), or null when it is not a number. */
  function numeric(schema) {
    const options = schema ? (schema.anyOf || [schema]) : [];
    return options.find((o) => o.type === "integer" || o.type === "number") || null;
  }
  const POLL_MS = 1000;
  const CHART_EVERY_MS = 2000;
  const CHART_MAX = 2000;       // executions drawn in the charts
  const PAGE = 50;              // rows per page of a list
  const body = document.body;
  const enc = encodeURIComponent;
  const $ = (selector, root) => (root || document).querySelector(selector);

  // ------------------------------------------------------------------ DOM

  /* Text from users (names, labels, reasons, messages naming them) may hold right-to-left letters or the
   * bidirectional controls the API accepts (U+202A-E embeddings and overrides, U+2066-9 isolates): such a
   * string goes in a <bdi> of its own, reordered within itself and never its neighbours (a task name with
   * U+202E reversed what followed it on the line: a spoof).  A string without them cannot reorder
   * anything and stays a plain text node; an <option> or <textarea> holds text only (the browser shows
   * each option on its own).  Its isolates are balanced first: a PDI (U+2069) closing none of its own would
   * close the <bdi> itself (Chromium does), and what follows it would escape; an isolate left open would
   * take the <bdi>'s own PDI. */
  const BIDI = /[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc\u061c\u200f\u202a-\u202e\u2066-\u2069]|[\u{10800}-\u{10fff}\u{1e800}-\u{1efff}]/u;
  const TEXT_ONLY = new Set(["OPTION", "TEXTAREA", "TITLE"]);
  function isolated(el, text) {
    if (TEXT_ONLY.has(el.tagName) || !BIDI.test(text)) return text;
    const bdi = document.createElement("bdi");
    bdi.textContent = balanced(text);
    return bdi;
  }
  function balanced(text) {
    let open = 0;
    const body = text.replace(/[\u2066-\u2069]/gu, (ch) => {
      if (ch !== "\u2069") open++;
      else if (open) open--;
      else return "\u2068\u2069";  // a PDI of no isolate: closes an empty one instead
      return ch;
    });
    return body + "\u2069".repeat(open);
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : isolated(el, String(child)));
    }
    return el;
  }

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") el.replaceChildren(isolated(el, String(value)));
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    return append(el, children);
  }

  const SVG = "http://www.w3.org/2000/svg";  // the namespace name, not something fetched
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") el.textContent = value;
      else if (value !== null && value !== undefined) el.setAttribute(key, String(value));
    }
    return append(el, children);
  }

  const fill = (el, ...children) => { el.replaceChildren(); return append(el, children); };
  /* Monospace text that may break after / : @ (image references, digests, ids). */
  const mono = (text) => h("span", {class: "mono wrap-any"},
    String(text ?? "").split(/(?<=[/:@])/).map((part, i) => (i ? [h("wbr"), part] : part)));
  const resultLink = (id) => h("a", {class: "mono", href: `/ui/results/${enc(id)}`, text: short(id)});
  const td = (label, content, cls) => h("td", {
    "data-label": label, class: [cls, WIDE_ONLY.has(label) && "wide-only"].filter(Boolean).join(" ") || null,
  }, content);

  /* A job's output as nodes that cannot disturb the page or fool the reader: control characters
   * (C0 but newline and tab, DEL, C1, bidirectional overrides and isolates) become visible
   * marks like \x1b; the API has already turned bytes that are not UTF-8 into U+FFFD. */
  const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/gu;
  function controlName(ch) {
    const code = ch.codePointAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
  }
  function outputNodes(text) {
    const nodes = document.createDocumentFragment();
    let at = 0;
    for (const match of text.matchAll(CONTROL)) {
      if (match.index > at) nodes.append(text.slice(at, match.index));
      nodes.append(h("span", {class: "ctl", title: "control character", text: controlName(match[0])}));
      at = match.index + match[0].length;
    }
    if (at < text.length) nodes.append(text.slice(at));
    return nodes;
  }
  /* text cut after its first n characters (code points, as the API counts them) */
  function splitChars(text, n) {
    let at = 0;
    for (const ch of text) {
      if (n-- <= 0) break;
      at += ch.length;
    }
    return [text.slice(0, at), text.slice(at)];
  }

  function fields(dl, pairs) {
    fill(dl, pairs.filter(Boolean).map(([name, value]) => [h("dt", {text: name}), h("dd", {}, value)]));
  }

  const NUMERIC = new Set(["Exit", "Attempt", "Duration"]);  // right-aligned columns
  const WIDE_ONLY = new Set(["Runner", "Attempt", "Started"]);  // left out of narrow tables on phones

  /* A table of rows; `stack` makes each row a card on phones, else the WIDE_ONLY columns go. */
  function table(headers, stack) {
    const tbody = h("tbody");
    const th = (x) => h("th", {class: [NUMERIC.has(x) && "num", WIDE_ONLY.has(x) && "wide-only"]
      .filter(Boolean).join(" ") || null, text: x});
    const el = h("div", {class: "table-wrap"},
      h("table", {class: stack ? "rows stack" : "rows"}, h("thead", {}, h("tr", {}, headers.map(th))), tbody));
    return {el, tbody};
  }

  /* A table filled page by page from an API listing; "Show more" follows its Link rel="next". */
  function pagedTable(mount, headers, emptyText, onPage) {
    const {el, tbody} = table(headers, true);
    const empty = h("p", {class: "empty", text: emptyText, hidden: true});
    const more = h("button", {type: "button", hidden: true, text: "Show more"});
    el.hidden = true;
    fill(mount, empty, el, h("div", {class: "pager"}, more));
    let nextPage = null;
    const shown = () => { empty.hidden = tbody.rows.length > 0; el.hidden = !empty.hidden; };
    async function load(path) {
      const {data, next} = await get(path);
      onPage(data);
      nextPage = next;
      more.hidden = !next;
      shown();
    }
    more.addEventListener("click", () => load(nextPage).catch(trouble));
    return {tbody, load, shown};
  }

  // ------------------------------------------------------------------ formats

  const pad = (n) => String(n).padStart(2, "0");

  function fmtTime(t) {
    if (t === null || t === undefined) return "—";
    const d = new Date(t * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function timeEl(t) {
    if (t === null || t === undefined) return "—";
    const iso = new Date(t * 1000).toISOString();
    return h("time", {datetime: iso, title: iso, text: fmtTime(t)});
  }

  function fmtDuration(sec) {
    if (sec === null || sec === undefined) return "—";
    if (sec < 10) return `${sec.toFixed(2)} s`;
    if (sec < 60) return `${sec.toFixed(1)} s`;
    const min = Math.floor(sec / 60);
    if (min < 60) return `${min} min ${pad(Math.floor(sec % 60))} s`;
    return `${Math.floor(min / 60)} h ${pad(min % 60)} min`;
  }

  const short = (id) => String(id || "").slice(0, 8);
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, payload) {
      const message = (payload && payload.message) || `the gateway answered ${status}`;
      super(message);
      this.status = status;
      this.code = payload && payload.error;
      // the API names the field first: "times: must be an integer from 1 to 100000"
      const named = /^([A-Za-z_][\w.[\]/-]*): ([\s\S]*)$/.exec(message);  // labels.example.com/team too
      this.field = named ? named[1] : null;
      this.detail = named ? named[2] : message;
    }
  }

  /* The team an admin or operator picked in the account bar (sent as X-Stevedore-Team on every call),
   * kept for this tab; "" for none (every team's lists, its own team for what it makes). */
  const TEAM_KEY = "stevedore.team";
  function pickedTeam() {
    try { return sessionStorage.getItem(TEAM_KEY) || ""; } catch (err) { return ""; }
  }
  function pickTeam(team) {
    try {
      if (team) sessionStorage.setItem(TEAM_KEY, team);
      else sessionStorage.removeItem(TEAM_KEY);
    } catch (err) { /* storage refused: the pick lasts this page */ }
  }

  function signInUrl() {
    return "/ui/signin?next=" + enc(location.pathname + location.search);
  }

  /* One API call; answers {data, next} where next is the Link rel="next" path.
   * A 401 sends the browser to the sign-in page (unless a token is being tried). */
  async function call(method, path, options) {
    const {body: payload, token} = options || {};
    const init = {method, headers: {Accept: "application/json"}, credentials: "same-origin", cache: "no-store"};
    if (token) init.headers.Authorization = `Bearer ${token}`;
    else if (pickedTeam()) init.headers["X-Stevedore-Team"] = pickedTeam();
    if (payload !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, {error: "NETWORK", message: "the gateway cannot be reached"});
    }
    let data = null;
    try { data = await response.json(); } catch (err) { /* not JSON */ }
    if (response.status === 401 && !token) {
      location.assign(signInUrl());
    }
    if (!response.ok) throw new ApiError(response.status, data);
    const link = /<([^>]+)>;\s*rel="next"/.exec(response.headers.get("Link") || "");
    return {data, next: link ? link[1] : null};
  }

  const get = (path) => call("GET", path);

  /* A listing's items, following its Link rel="next" until it ends or ``max`` are read: a page may hold
   * fewer items than its limit, when they pass the list's bound in bytes (LIST_PAGE_BYTES). */
  async function getAll(path, max) {
    const all = [];
    while (path && all.length < max) {
      const page = await get(path);
      all.push(...page.data);
      path = page.next;
    }
    return {data: all.slice(0, max), next: path};
  }

  // ------------------------------------------------------------------ messages

  const flashEl = $("#flash");
  let troubled = false;

  /* `text`: a string, or its parts (a list): each part that is user text isolated on its own (append) */
  function flash(text, bad) {
    troubled = false;
    fill(flashEl, text || "");
    flashEl.classList.toggle("bad", Boolean(bad));
    flashEl.hidden = !text;
  }

  function trouble(err) {
    if (err && err.status === 401) return;
    flash(err && err.status === 0 ? "Lost contact with the gateway; retrying…" : refusal(err), true);
    troubled = true;
  }

  /* What went wrong, said plainly: a 403 is the role's limit, a 404 may be another team's. */
  function refusal(err) {
    if (err && err.status === 403) return `Not allowed: ${err.message}`;
    if (err && err.status === 404) {
      return `Not found: ${err.message} (it does not exist, or belongs to a team you do not act for)`;
    }
    return `Error: ${err.message}`;
  }

  function recovered() {
    if (troubled) flash("");
  }

  function clearErrors(form) {
    form.querySelectorAll("[data-error-for]").forEach((el) => { el.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  }

  /* Show an API error next to the field it names, else above the form's buttons. */
  function showError(form, err) {
    // the field's own input (run.times); else the input of the list or object it is in, with the whole
    // message (items[3].env.FOO, after[0].result_id: at the items or after input)
    const names = err.field ? [err.field, err.field.replace(/\[.*$/, ""), err.field.split(/[.[]/)[0]] : [];
    for (const name of names) {
      const input = form.elements.namedItem(name);
      const slot = input ? form.querySelector(`[data-error-for="${CSS.escape(name)}"]`) : null;
      if (!slot) continue;
      fill(slot, name === err.field ? err.detail : err.message);
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    fill(form.querySelector('[data-error-for="*"]'), err.message);
  }

  async function submitting(form, action) {
    clearErrors(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await action();
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (err.status !== 401) showError(form, err);
    } finally {
      button.disabled = false;
    }
  }

  const value = (form, name) => form.elements.namedItem(name).value.trim();

  // ------------------------------------------------------------------ live updates

  /* Runs step() every `ms` while it answers true; paused while the tab is hidden.
   * A failed step is retried (and the failure shown) rather than ending the loop. */
  function poller(step, ms) {
    let timer = null;
    let wanted = false;
    let busy = false;
    function schedule(delay) {
      if (wanted && timer === null && !busy && !document.hidden) timer = setTimeout(run, delay);
    }
    async function run() {
      timer = null;
      busy = true;
      try {
        wanted = (await step()) === true;
        recovered();
      } catch (err) {
        trouble(err);
      } finally {
        busy = false;
      }
      schedule(ms || POLL_MS);
    }
    document.addEventListener("visibilitychange", () => schedule(0));
    return {
      start() { wanted = true; schedule(ms || POLL_MS); },
      stop() { wanted = false; clearTimeout(timer); timer = null; },
    };
  }

  /* Marks <body data-loaded> once a page's first data is shown (tests and screenshots wait for it). */
  function loaded(promise) {
    return promise.catch(trouble).finally(() => { body.dataset.loaded = "true"; });
  }

  // ------------------------------------------------------------------ pieces

  function badge(status) {
    const live = ACTIVE.has(status) || TASK_BUSY.has(status);
    return h("span", {class: `badge s-${status}${live ? " live" : ""}`, "data-status": status, title: status,
                      text: LABELS[status] || status});
  }

  // ------------------------------------------------------------------ labels (docs/api.md#labels)

  /* A run's or task's labels as chips, "key=value" each; with `href(filter)`, each chip links to a list
   * filtered by it. */
  function chips(labels, href) {
    const keys = Object.keys(labels || {}).sort();
    if (!keys.length) return null;
    return h("span", {class: "chips"}, keys.map((k) => {
      const text = `${k}=${labels[k]}`;  // key and value each isolated: neither reorders the other
      return href ? h("a", {class: "chip", href: href(text), title: `Only those labelled ${text}`}, k, "=", labels[k])
        : h("span", {class: "chip"}, k, "=", labels[k]);
    }));
  }
  const resultsWith = (filter) => `/ui/results?${new URLSearchParams({label: filter})}`;

  /* The mark of what came from GA4GH TES (docs/tes.md): a run labelled ga4gh.org/tes=task, a task it made for an
   * executor's image (ga4gh.org/tes=image); null for anything else. */
  const TES_LABEL = "ga4gh.org/tes";
  function tesMark(labels) {
    const kind = (labels || {})[TES_LABEL];
    if (kind !== "task" && kind !== "image") return null;
    return h("span", {class: "mark-tes", "data-tes": kind, text: kind === "task" ? "TES" : "TES image",
                      title: kind === "task" ? "A GA4GH TES task: submitted to /ga4gh/tes/v1/tasks"
                        : "Made by GA4GH TES for an executor's image"});
  }
  const tasksWith = (filter) => `/ui/tasks?${new URLSearchParams({label: filter})}`;

  /* "key=value" items, separated by commas, spaces or lines, as a body's labels ({} for none); an item
   * without "=" is refused here, naming labels (the API checks the keys and values themselves). */
  function parseLabels(text) {
    const labels = {};
    for (const item of (text || "").split(/[\s,]+/).filter(Boolean)) {
      const eq = item.indexOf("=");
      if (eq <= 0) {
        throw new ApiError(400, {error: "VALIDATION_ERROR", message: `labels: ${JSON.stringify(item)} is not key=value`});
      }
      labels[item.slice(0, eq)] = item.slice(eq + 1);
    }
    return labels;
  }

  /* Filters typed in a list's label box ("sweep=lr-2026, project") as the list's ?label= values. */
  const labelFilters = (text) => (text || "").split(/[\s,]+/).filter(Boolean);

  function taskStatus(task) {
    return h("div", {class: "status-cell"}, badge(task.status),
      task.status === "SUBMITTED" && h("span", {class: "sub", text: "waiting to import"}),
      task.status === "IMPORTING" && h("span", {class: "sub", text: "pulling the image"}),
      task.status === "ERROR" && task.error && h("div", {class: "reason", text: task.error}));
  }

  function executionStatus(detail) {
    return h("div", {class: "status-cell"}, badge(detail.status),
      detail.reason && detail.status !== "COMPLETE" && h("div", {class: "reason", text: detail.reason}));
  }

  /* A bar of a result's executions, one coloured segment per status; .update(result) redraws it. */
  function progress() {
    const segments = {};
    const bar = h("div", {class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-label": "executions finished"});
    for (const status of BAR_ORDER) bar.append(segments[status] = h("div", {class: `seg s-${status}`}));
    const label = h("div", {class: "progress-label"});
    const el = h("div", {class: "progress"}, bar, label);
    el.update = (result) => {
      const counts = result.counts || {};
      const total = result.times || 0;
      const finished = [...TERMINAL].reduce((n, st) => n + (counts[st] || 0), 0);
      for (const status of BAR_ORDER) {
        const n = counts[status] || 0;
        segments[status].style.width = total ? `${(100 * n) / total}%` : "0";
        segments[status].title = `${LABELS[status]}: ${n}`;
      }
      bar.setAttribute("aria-valuemax", total);
      bar.setAttribute("aria-valuenow", finished);
      el.dataset.done = finished;
      el.dataset.total = total;
      const parts = [`${finished} of ${total} finished`];
      // the active ones (running first), then those that ended otherwise than complete
      const told = [...[...ACTIVE].reverse(), ...[...TERMINAL].filter((st) => st !== "COMPLETE")];
      for (const status of told) {
        if (counts[status]) parts.push(`${counts[status]} ${status === "ERROR" ? "failed" : status.toLowerCase()}`);
      }
      label.textContent = parts.join(" · ");
      if (!bar.classList.contains("eased")) {
        void bar.offsetWidth;  // lay the first widths out as they are; ease only later changes
        bar.classList.add("eased");
      }
    };
    return el;
  }

  /* A list of results (all, or one task's), newest first, kept live while any is active. */
  function resultsList(mount, query, showTask) {
    const headers = ["Result", showTask && "Task", "Status", "Progress", "Submitted", "Duration", "Labels"]
      .filter(Boolean);
    const emptyText = !showTask ? "No runs yet."
      : Object.keys(query).length ? "No results match." : "No results yet: run a task from its page.";
    const list = pagedTable(mount, headers, emptyText, (data) => {
      data.forEach(render);
      if (anyActive()) live.start();
    });
    const rows = new Map();

    function render(result) {
      let row = rows.get(result.result_id);
      if (!row) {
        row = {bar: progress(), status: td("Status"), duration: td("Duration", null, "num")};
        const task = h("a", {href: `/ui/tasks/${enc(result.task_id)}`, text: result.task_name || short(result.task_id)});
        row.tr = h("tr", {"data-result-id": result.result_id},
          td("Result", [resultLink(result.result_id), tesMark(result.labels) && " ", tesMark(result.labels)]),
          showTask && td("Task", task, "wrap-any"), row.status, td("Progress", row.bar, "wide"),
          td("Submitted", timeEl(result.submitted_at), "nowrap"), row.duration,
          td("Labels", chips(result.labels, resultsWith), "labels"));
        rows.set(result.result_id, row);
        list.tbody.append(row.tr);
      }
      row.result = result;
      fill(row.status, badge(result.status));
      row.duration.textContent = fmtDuration(result.duration);
      row.bar.update(result);
    }

    const anyActive = () => [...rows.values()].some((row) => ACTIVE.has(row.result.status));
    const live = poller(async () => {
      const active = [...rows.values()].filter((row) => ACTIVE.has(row.result.status));
      const fresh = await Promise.all(active.map((row) => get(`/result/${enc(row.result.result_id)}/`)));
      fresh.forEach(({data}) => render(data));
      return anyActive();
    });

    const search = new URLSearchParams({limit: PAGE});
    for (const [name, given] of Object.entries(query)) [].concat(given).forEach((one) => search.append(name, one));
    return list.load(`/result/?${search}`);
  }

  // ------------------------------------------------------------------ tasks

  function tasksPage() {
    const form = $("#register-form");
    const list = pagedTable($("#tasks"), ["Name", "Status", "Image", "Registered", "Labels"],
      "No tasks yet: register one above.", (data) => { data.forEach((task) => render(task)); live.start(); });
    const rows = new Map();

    function render(task, first) {
      const tr = h("tr", {"data-task-id": task.task_id},
        td("Name", [h("a", {href: `/ui/tasks/${enc(task.task_id)}`, text: task.name}), tesMark(task.labels) && " ",
                    tesMark(task.labels)], "name"),
        td("Status", taskStatus(task)),
        td("Image", mono(task.repository)),
        td("Registered", timeEl(task.created_at), "nowrap"),
        td("Labels", chips(task.labels, tasksWith), "labels"));
      const old = rows.get(task.task_id);
      if (old) old.tr.replaceWith(tr);
      else if (first) list.tbody.prepend(tr);
      else list.tbody.append(tr);
      rows.set(task.task_id, {tr, task});
    }

    const busy = () => [...rows.values()].filter((row) => TASK_BUSY.has(row.task.status));
    const live = poller(async () => {
      const fresh = await Promise.all(busy().map((row) => get(`/task/${enc(row.task.task_id)}/`)));
      fresh.forEach(({data}) => render(data));
      return busy().length > 0;
    });

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(form, async () => {
        const payload = {repository: value(form, "repository")};
        const name = value(form, "name");
        if (name) payload.name = name;
        const labels = parseLabels(value(form, "labels"));
        if (Object.keys(labels).length) payload.labels = labels;
        const {data} = await call("POST", "/task/", {body: payload});
        form.reset();
        render(data, true);
        list.shown();
        flash(["Registered “", data.name, "”; its image is being pulled."]);
        live.start();
      });
    });
    const filters = new URLSearchParams(location.search).getAll("label");  // a chip's link: ?label=k=v
    const search = new URLSearchParams({limit: PAGE});
    filters.forEach((one) => search.append("label", one));
    const note = $("#tasks-filter");
    if (note && filters.length) {
      note.hidden = false;
      fill(note, "Only tasks labelled ", filters.join(", "), " · ", h("a", {href: "/ui/tasks", text: "show all"}));
    }
    loaded(list.load(`/task/?${search}`));
  }

  // ------------------------------------------------------------------ one task

  function parseEnv(text) {
    const env = {};
    text.split(/\r?\n/).forEach((line, i) => {
      if (!line.trim() || line.trim().startsWith("#")) return;
      const eq = line.indexOf("=");
      if (eq <= 0) {
        throw new ApiError(400, {error: "VALIDATION_ERROR", message: `env: line ${i + 1} is not KEY=value`});
      }
      env[line.slice(0, eq).trim()] = line.slice(eq + 1);
    });
    return env;
  }

  /* The RUN body from the form: blank fields are left to the API's defaults, and
   * what is not a number is sent as typed so that the API names the field. */
  function runBody(form) {
    const payload = {operation: "RUN"};
    for (const name of ["times", "parallelism", "timeout", "retries", "priority", "cpus", "memory", "disk", "command"]) {
      const raw = value(form, name);
      if (raw === "") continue;
      payload[name] = numeric(RUN_FIELDS[name]) && Number.isFinite(Number(raw)) ? Number(raw) : raw;
    }
    const env = parseEnv(form.elements.namedItem("env").value);
    if (Object.keys(env).length) payload.env = env;
    Object.assign(payload, policyBody(form));
    Object.assign(payload, perExecution(form, payload));
    Object.assign(payload, afterBody(form));
    const labels = form.elements.namedItem("labels") ? parseLabels(value(form, "labels")) : {};
    if (Object.keys(labels).length) payload.labels = labels;
    Object.assign(payload, placementBody(form));
    return payload;
  }

  /* Where a RUN may run (docs/api.md#runners-labels-constraints-and-gpus): "zone=eu, disk=ssd" as
   * constraints, gpus as a number; what is not key=value or a number is sent as typed so the API names it. */
  function placementBody(form) {
    const body = {};
    const labels = form.elements.namedItem("constraints");
    const raw = labels ? labels.value.trim() : "";
    if (raw) {
      body.constraints = {};
      for (const part of raw.split(/[\s,]+/).filter(Boolean)) {
        const at = part.indexOf("=");
        if (at < 0) throw new ApiError(400, {message: `constraints: ${part} is not key=value`});
        body.constraints[part.slice(0, at)] = part.slice(at + 1);
      }
    }
    const gpus = form.elements.namedItem("gpus");
    if (gpus && gpus.value.trim() !== "") {
      const n = gpus.value.trim();
      body.gpus = /^\d+$/.test(n) ? Number(n) : n;
    }
    return body;
  }

  // ------------------------------------------------------------------ failure policy (docs/api.md#failure-policy)

  /* The RUN's failure policy from the form: max_failures and deadline as numbers, the exit-code
   * rules as lists ("1, 137"); what is not a number is sent as typed so that the API names it. */
  function policyBody(form) {
    const policy = {};
    const asNumber = (raw) => (raw !== "" && Number.isFinite(Number(raw)) ? Number(raw) : raw);
    for (const name of ["max_failures", "deadline"]) {
      const raw = value(form, name);
      if (raw !== "") policy[name] = asNumber(raw);
    }
    for (const name of ["retry_on_exit_codes", "no_retry_on_exit_codes"]) {
      const raw = value(form, name);
      if (raw !== "") policy[name] = raw.split(/[\s,]+/).filter(Boolean).map(asNumber);
    }
    return policy;
  }

  /* The result page's rows of a run's failure policy, and why it stopped (none without a policy). */
  function policyRows(r) {
    const p = r.params || {};
    const parts = [];
    if (p.max_failures) parts.push(`stop after ${p.max_failures} failure${p.max_failures === 1 ? "" : "s"}`);
    if (p.deadline) parts.push(`deadline ${fmtDuration(p.deadline)}`);
    if (p.retry_on_exit_codes) parts.push(`retry only exit codes ${p.retry_on_exit_codes.join(", ") || "(none)"}`);
    if (p.no_retry_on_exit_codes) parts.push(`never retry exit codes ${p.no_retry_on_exit_codes.join(", ")}`);
    const why = {max_failures: "max failures reached: the rest were stopped",
                 deadline: "deadline reached: the run was stopped"};
    return [
      parts.length && ["Failure policy", h("span", {"data-policy": "", text: parts.join("; ")})],
      r.deadline_at && ["Deadline at", timeEl(r.deadline_at)],
      r.reason && [why[r.reason] ? "Stopped" : "Reason",
                   h("span", {"data-reason": r.reason, text: why[r.reason] || r.reason})],
    ];
  }

  /* The RUN's items / matrix (JSON typed in their boxes); with either, times left at 1 is left out. */
  function perExecution(form, payload) {
    const given = {};
    for (const name of ["matrix", "items"]) {
      const raw = form.elements.namedItem(name) ? value(form, name) : "";
      if (raw === "") continue;
      try {
        given[name] = JSON.parse(raw);
      } catch (err) {
        throw new ApiError(400, {error: "VALIDATION_ERROR", message: `${name}: is not JSON (${err.message})`});
      }
    }
    if (Object.keys(given).length && payload.times === 1) delete payload.times;
    return given;
  }

  /* An execution's own parameters (a detail's params) as text: LR=0.1 SEED=1 command=[...]. */
  function ownParams(params) {
    if (!params) return "—";
    const words = Object.entries(params.env || {}).map(([k, v]) => `${k}=${v}`);
    if (params.command) words.push(`command=${JSON.stringify(params.command)}`);
    return mono(words.join(" ") || "—");
  }

  /* A RUN's `after` from the form: result ids (spaces, commas or lines between them), each waiting as
   * the "when" choice says, or as its own `:ENDED` / `:COMPLETE` suffix; `per_index` when ticked. */
  function afterBody(form) {
    const raw = value(form, "after");
    if (!raw) return {};
    const when = form.elements.namedItem("when").value;
    const after = raw.split(/[\s,]+/).filter(Boolean).map((item) => {
      const [resultId, own] = item.split(":");
      return {result_id: resultId, when: own ? own.toUpperCase() : when};
    });
    return form.elements.namedItem("per_index").checked ? {after, per_index: true} : {after};
  }

  /* A run's dependencies: each run it waits (or waited) for, linked, and whether that still holds it. */
  function afterList(r) {
    const after = (r.params || {}).after || [];
    const open = new Set((r.waiting_for || []).map((c) => c.result_id));
    const items = after.map((c) => h("li", {}, resultLink(c.result_id),
      c.when === "ENDED" ? " to end, however it ends" : " to complete",
      open.has(c.result_id) ? h("span", {class: "muted", text: " (waiting)"}) : ""));
    return [h("ul", {class: "after-list"}, items), r.params.per_index ? h("p", {class: "muted small", text: "execution by execution (per index)"}) : ""];
  }

  function taskPage() {
    const id = body.dataset.taskId;
    const form = $("#run-form");
    let task = null;

    function render(t) {
      task = t;
      document.title = `${t.name} · Stevedore`;
      fill($("#title"), t.name, " ", badge(t.status), tesMark(t.labels) && " ", tesMark(t.labels));
      fields($("#fields"), [
        ["Status", taskStatus(t)],
        ["Image", mono(t.repository)],
        ["Digest", t.digest ? mono(t.digest) : "—"],
        ["Registered", timeEl(t.created_at)],
        ["Imported", timeEl(t.imported_at)],
        Object.keys(t.labels || {}).length && ["Labels", chips(t.labels, tasksWith)],
        ["Task id", mono(t.task_id)],
      ]);
      const ready = t.status === "READY";
      $("#reimport").hidden = TASK_BUSY.has(t.status);
      $("#delete").hidden = false;
      $("#run-fieldset").disabled = !ready;
      const blocked = $("#run-blocked");
      blocked.hidden = ready;
      blocked.textContent = TASK_BUSY.has(t.status)
        ? "The image is still being imported; the task can run once it is READY."
        : "The image could not be imported, so this task cannot run. " +
          "Register it again once the image is available.";
    }

    const live = poller(async () => {
      render((await get(`/task/${enc(id)}/`)).data);
      return TASK_BUSY.has(task.status);
    });

    $("#reimport").addEventListener("click", async (event) => {
      const button = event.currentTarget;
      button.disabled = true;
      try {
        render((await call("POST", `/task/${enc(id)}/`, {body: {operation: "IMPORT"}})).data);
        flash("Re-import started: the image is pulled again and its new digest recorded.");
        live.start();
      } catch (err) {
        if (err.status !== 401) flash(`Re-import failed: ${err.message}`, true);
      } finally {
        button.disabled = false;
      }
    });

    $("#delete").addEventListener("click", async (event) => {
      const button = event.currentTarget;
      if (!window.confirm(`Delete task ${task ? task.name : id}? Its finished runs stay listed.`)) return;
      button.disabled = true;
      try {
        await call("DELETE", `/task/${enc(id)}/`);
        location.assign("/ui/tasks");
      } catch (err) {
        if (err.status !== 401) flash(`Delete refused: ${err.message}`, true);
        button.disabled = false;
      }
    });
    const first = get(`/task/${enc(id)}/`).then(({data}) => { render(data); live.start(); });

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(form, async () => {
        const {data} = await call("POST", `/task/${enc(id)}/`, {body: runBody(form)});
        location.assign(`/ui/results/${enc(data.result_id)}`);
      });
    });
    loaded(Promise.all([first, resultsList($("#results"), {task_id: id}, false)]));
  }

  // ------------------------------------------------------------------ results

  function resultsPage() {
    const form = $("#filters");
    const params = new URLSearchParams(location.search);
    const query = {};
    for (const name of ["status", "task_id"]) if (params.get(name)) query[name] = params.get(name);
    const filters = params.getAll("label").flatMap(labelFilters);
    if (filters.length) query.label = filters;
    $("#f-label").value = filters.join(", ");
    $("#f-status").value = query.status || "";
    const select = $("#f-task");
    const tasks = getAll(`/task/?limit=${LIST_MAX}`, LIST_MAX).then(({data}) => {
      for (const t of data) select.append(h("option", {value: t.task_id, text: t.name}));
      if (query.task_id && !data.some((t) => t.task_id === query.task_id)) {
        select.append(h("option", {value: query.task_id, text: short(query.task_id)}));
      }
      select.value = query.task_id || "";
    });
    // a filter applies as soon as it is chosen (the form has no button); blank ones stay out of the URL
    // the label box holds several filters ("sweep=lr-2026, project"): one ?label= each
    const apply = () => {
      const chosen = [...new FormData(form)].filter(([, v]) => v)
        .flatMap(([k, v]) => (k === "label" ? labelFilters(v).map((one) => [k, one]) : [[k, v]]));
      location.assign(`/ui/results${chosen.length ? "?" + new URLSearchParams(chosen) : ""}`);
    };
    form.addEventListener("change", apply);
    form.addEventListener("submit", (event) => { event.preventDefault(); apply(); });
    const shown = resultsList($("#results"), query, true).catch((err) => {
      if (!(err instanceof ApiError) || err.field !== "label") throw err;
      fill($("#e-label"), err.detail);  // a bad filter: said next to the box
      $("#f-label").setAttribute("aria-invalid", "true");
    });
    loaded(Promise.all([tasks, shown]));
  }

  // ------------------------------------------------------------------ charts

  /* Each attempt that ran: {detail, index, status, start, end}; a running one ends "now". */
  function spans(details, now) {
    const out = [];
    for (const d of details) {
      const attempts = (d.attempts || []).filter((a) => a.start !== null && a.start !== undefined);
      for (const a of attempts) out.push({detail: d, status: a.status, start: a.start, end: a.end ?? a.start});
      if (d.status === "RUNNING" && d.start !== null) {
        out.push({detail: d, status: "RUNNING", start: d.start, end: Math.max(d.start, now)});
      } else if (!attempts.length && d.start !== null && d.end !== null) {
        out.push({detail: d, status: d.status, start: d.start, end: d.end});
      }
    }
    return out;
  }

  function niceStep(range, count) {
    const raw = range / Math.max(1, count);
    const mag = 10 ** Math.floor(Math.log10(raw || 1));
    return [1, 2, 5, 10].map((m) => m * mag).find((step) => step >= raw) || raw;
  }

  function executionLink(detail, ...children) {
    return s("a", {href: `/ui/results/${enc(detail.result_id)}/executions/${enc(detail.detail_id)}`}, ...children);
  }

  /* When each execution ran: one bar per attempt on the time axis, packed into lanes
   * (an attempt takes the first lane free at its start), so the lanes in use at any
   * moment are the executions running together and a straggler sticks out right. */
  function drawTimeline(mount, details, now) {
    const items = spans(details, now).sort((a, b) => a.start - b.start || a.end - b.end);
    if (!items.length) return fill(mount, h("p", {class: "empty", text: "Nothing has started yet."}));
    const laneEnds = [];
    for (const item of items) {
      let lane = laneEnds.findIndex((end) => end <= item.start);
      if (lane < 0) { lane = laneEnds.length; laneEnds.push(0); }
      laneEnds[lane] = item.end;
      item.lane = lane;
    }
    const t0 = items.reduce((m, x) => Math.min(m, x.start), Infinity);
    const t1 = items.reduce((m, x) => Math.max(m, x.end), -Infinity);
    const span = Math.max(t1 - t0, 0.001);
    const width = Math.max(300, mount.clientWidth || 800);
    const left = 58, right = 12, top = 6, axis = 24;
    const lanes = laneEnds.length;
    const laneH = Math.max(2, Math.min(18, 300 / lanes));
    const gap = laneH > 6 ? 3 : 0;
    const plotW = width - left - right;
    const height = top + lanes * laneH + axis;
    const x = (t) => left + ((t - t0) / span) * plotW;
    const svg = s("svg", {viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
                          "aria-label": `timeline of ${plural(items.length, "run")}, at most ${lanes} at once`});
    const step = niceStep(span, Math.max(2, Math.floor(plotW / 90)));
    const bottom = top + lanes * laneH;
    for (let t = 0; t <= span + 1e-9; t += step) {
      svg.append(s("line", {class: "grid", x1: x(t0 + t), x2: x(t0 + t), y1: top, y2: bottom}));
      svg.append(s("text", {x: x(t0 + t), y: height - 8, "text-anchor": "middle", text: `+${fmtAxis(t, step)}`}));
    }
    svg.append(s("line", {class: "axis", x1: left, x2: width - right, y1: bottom, y2: bottom}));
    svg.append(s("text", {x: left - 8, y: top + 11, "text-anchor": "end", text: `${lanes} at once`}));
    for (const item of items) {
      const d = item.detail;
      const rect = s("rect", {
        class: `f-${item.status}`, "data-index": d.index, x: x(item.start), y: top + item.lane * laneH + gap / 2,
        width: Math.max(1.5, x(item.end) - x(item.start)), height: Math.max(1, laneH - gap), rx: laneH > 6 ? 2 : 0,
      }, s("title", {text: `#${d.index} ${LABELS[item.status] || item.status}: ` +
                           `${fmtDuration(item.end - item.start)} from +${fmtDuration(item.start - t0)}` +
                           (d.runner ? ` on ${d.runner}` : "")}));
      svg.append(executionLink(d, rect));
    }
    fill(mount, svg);
    return {lanes, items: items.length};
  }

  function fmtAxis(seconds, step) {
    if (step >= 60) return `${Math.round(seconds / 60)}m`;
    return `${Number(seconds.toFixed(step < 1 ? 1 : 0))}s`;
  }

  /* How long each execution took, by index: a tall bar is a straggler; the dashed line is the median. */
  function drawDurations(mount, details, now) {
    const sofar = (d) => (d.status === "RUNNING" && d.start !== null ? Math.max(0, now - d.start) : null);
    const items = details
      .map((d) => ({d, seconds: d.duration ?? sofar(d), status: d.status}))
      .filter((x) => x.seconds !== null)
      .sort((a, b) => a.d.index - b.d.index);
    if (!items.length) return fill(mount, h("p", {class: "empty", text: "No execution has a duration yet."}));
    const width = Math.max(300, mount.clientWidth || 800);
    const height = 180, left = 58, right = 12, top = 10, bottom = 24;
    const plotW = width - left - right, plotH = height - top - bottom;
    const max = Math.max(...items.map((x) => x.seconds), 0.001);
    const step = niceStep(max, 4);
    const yMax = Math.ceil(max / step) * step;
    const y = (v) => top + plotH - (v / yMax) * plotH;
    const slot = plotW / items.length;
    const barW = Math.max(1, slot > 4 ? slot - Math.min(4, slot * 0.2) : slot);
    const svg = s("svg", {viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
                          "aria-label": `durations of ${items.length} executions`});
    for (let v = 0; v <= yMax + 1e-9; v += step) {
      svg.append(s("line", {class: "grid", x1: left, x2: width - right, y1: y(v), y2: y(v)}));
      svg.append(s("text", {x: left - 8, y: y(v) + 4, "text-anchor": "end", text: fmtAxis(v, step)}));
    }
    items.forEach((item, i) => {
      const rect = s("rect", {class: `f-${item.status}`, "data-index": item.d.index, x: left + i * slot,
                              y: y(item.seconds), width: barW, height: Math.max(1, top + plotH - y(item.seconds))},
        s("title", {text: `#${item.d.index} ${LABELS[item.status]}: ${fmtDuration(item.seconds)}`}));
      svg.append(executionLink(item.d, rect));
    });
    const sorted = items.map((x) => x.seconds).sort((a, b) => a - b);
    const median = sorted[Math.floor((sorted.length - 1) / 2)];
    svg.append(s("line", {class: "median", x1: left, x2: width - right, y1: y(median), y2: y(median)}));
    svg.append(s("line", {class: "axis", x1: left, x2: width - right, y1: top + plotH, y2: top + plotH}));
    const first = items[0].d.index, last = items[items.length - 1].d.index;
    svg.append(s("text", {x: left, y: height - 6, text: `#${first}`}));
    if (last !== first) {
      svg.append(s("text", {x: width - right, y: height - 6, "text-anchor": "end", text: `#${last}`}));
    }
    svg.append(s("text", {x: (left + width - right) / 2, y: height - 6, "text-anchor": "middle",
                          text: `median ${fmtDuration(median)} · max ${fmtDuration(max)}`}));
    fill(mount, svg);
    return {bars: items.length};
  }

  // ------------------------------------------------------------------ one result

  /* A run's parallelism or priority now, with what it was run with when a PATCH changed it. */
  function changedText(name, r, p, none) {
    const now = name in r ? r[name] : p[name];
    const was = p[name];
    const text = now ?? none;
    return now === was || (now ?? null) === (was ?? null) ? text : `${text} (run with ${was ?? none})`;
  }

  function envList(env) {
    const keys = Object.keys(env || {});
    if (!keys.length) return "none";
    return h("ul", {class: "env-list"}, keys.map((k) => h("li", {}, mono(`${k}=${env[k]}`))));
  }

  function resultPage() {
    const id = body.dataset.resultId;
    const base = `/result/${enc(id)}/`;
    const bar = progress();
    const legend = h("p", {class: "legend"});
    fill($("#progress"), bar, legend);
    const cancel = $("#cancel");
    const rerun = $("#rerun");
    const remove = $("#delete-result");
    let result = null;

    function render(r) {
      result = r;
      document.title = `Result ${short(r.result_id)} · Stevedore`;
      fill($("#title"), `Result ${short(r.result_id)} `, badge(r.status), tesMark(r.labels) && " ", tesMark(r.labels));
      bar.update(r);
      const counts = r.counts || {};
      fill(legend, STATUSES.map((st) => h("span", {class: `s-${st}`, text: `${LABELS[st]} ${counts[st] || 0}`})));
      const p = r.params || {};
      const command = p.command === null || p.command === undefined ? "the image's default"
        : mono(Array.isArray(p.command) ? JSON.stringify(p.command) : p.command);
      fields($("#fields"), [
        ["Task", h("a", {href: `/ui/tasks/${enc(r.task_id)}`, text: r.task_name || r.task_id})],
        ["Image", mono(r.image)],
        ["Times", r.times],
        ["Submitted", timeEl(r.submitted_at)],
        ["Started", timeEl(r.start)],
        ["Ended", timeEl(r.end)],
        ["Duration", fmtDuration(r.duration)],
        ["Command", command],
        ["Environment", envList(p.env)],
        ["Timeout", p.timeout ? fmtDuration(p.timeout) : "none"],
        ["Parallelism", changedText("parallelism", r, p, "no limit")],
        ["Retries", p.retries || 0],
        ["Priority", changedText("priority", r, p, 5)],
        p.per_execution && ["Per execution", p.per_execution === "matrix"
          ? "a matrix: each execution runs one combination (its parameters below)"
          : "items: each execution has parameters of its own (below)"],
        ["Memory", p.memory || "default"],
        ["Disk", p.disk || "default"],
        ["CPUs", p.cpus || "default"],
        p.constraints && ["Runner labels", mono(Object.entries(p.constraints).map(([k, v]) => `${k}=${v}`).join(", "))],
        p.gpus && ["GPUs", String(p.gpus)],
        r.unschedulable && ["Unschedulable", h("span", {class: "reason", "data-unschedulable": "", text: r.unschedulable})],
        ...policyRows(r),
        !r.reason && r.cancel_requested && ["Cancel", ACTIVE.has(r.status) ? "requested; stopping what runs" : "requested"],
        ((r.params || {}).after || []).length && ["Waits for", afterList(r)],
        r.rerun_of && ["Rerun of", resultLink(r.rerun_of)],
        r.schedule_id && ["Schedule", h("a", {class: "mono", href: `/ui/schedules/${enc(r.schedule_id)}`,
                                              text: short(r.schedule_id)})],
        (r.reruns || []).length && ["Reruns", r.reruns.map((rid, i) => [i ? ", " : "", resultLink(rid)])],
        Object.keys(r.labels || {}).length && ["Labels", chips(r.labels, resultsWith)],
        tesMark(r.labels) && ["From", h("span", {"data-tes-from": "",
                                                 text: "GA4GH TES: the TES task of the same id (GET /ga4gh/tes/v1/tasks/{id})"})],
        ["Result id", mono(r.result_id)],
      ]);
      cancel.hidden = !ACTIVE.has(r.status) || r.cancel_requested;
      changeControl(r);
      execTable.classList.toggle("no-params", !p.per_execution);
      rerun.hidden = ACTIVE.has(r.status) || !((counts.ERROR || 0) + (counts.KILLED || 0));
      remove.hidden = ACTIVE.has(r.status);
    }

    // executions: pages of PAGE, walked with the API's `after` cursor
    const pages = {status: "", cursors: [null], index: 0, next: null};
    const {el, tbody} = table(["#", "Status", "Exit", "Runner", "Attempt", "Started", "Duration", "Parameters"]);
    const execTable = el;
    el.querySelector("th:last-child").classList.add("params-col");
    const prev = h("button", {type: "button", text: "← Previous"});
    const next = h("button", {type: "button", text: "Next →"});
    const where = h("span", {class: "muted small"});
    const none = h("p", {class: "empty", text: "No executions.", hidden: true});
    el.hidden = true;
    const pager = h("div", {class: "pager"}, prev, where, next);
    fill($("#executions"), none, el, pager);

    async function loadExecutions() {
      const q = new URLSearchParams({limit: PAGE});
      if (pages.status) q.set("status", pages.status);
      if (pages.cursors[pages.index]) q.set("after", pages.cursors[pages.index]);
      const {data, next: link} = await get(`${base}detail/?${q}`);
      pages.next = link ? new URLSearchParams(link.split("?")[1]).get("after") : null;
      fill(tbody, data.map((d) => h("tr", {"data-detail-id": d.detail_id},
        td("#", h("a", {href: `/ui/results/${enc(id)}/executions/${enc(d.detail_id)}`, text: `#${d.index}`})),
        td("Status", executionStatus(d)),
        td("Exit", d.exit_code ?? "—", "num"),
        td("Runner", d.runner ? mono(d.runner) : "—"),
        td("Attempt", d.attempt || "—", "num"),
        td("Started", timeEl(d.start), "nowrap"),
        td("Duration", fmtDuration(d.duration), "num"),
        td("Parameters", ownParams(d.params), "params-col"))));
      none.hidden = data.length > 0;
      el.hidden = data.length === 0;
      prev.disabled = pages.index === 0;
      next.disabled = !pages.next;
      pager.hidden = pages.index === 0 && !pages.next;
      const from = pages.index * PAGE;
      where.textContent = data.length ? `${from + 1}–${from + data.length}` : "";
    }

    prev.addEventListener("click", () => { pages.index -= 1; loadExecutions().catch(trouble); });
    next.addEventListener("click", () => {
      pages.cursors[pages.index + 1] = pages.next;
      pages.index += 1;
      loadExecutions().catch(trouble);
    });
    $("#detail-status").addEventListener("change", (event) => {
      Object.assign(pages, {status: event.target.value, cursors: [null], index: 0});
      loadExecutions().catch(trouble);
    });

    // charts: every execution (up to CHART_MAX), redrawn while the run is live
    let chartData = [];
    let chartedAt = 0;
    function drawCharts() {
      const now = Date.now() / 1000;
      drawTimeline($("#timeline"), chartData, now);
      drawDurations($("#durations"), chartData, now);
    }
    async function loadCharts() {
      const {data: all, next: path} = await getAll(`${base}detail/?limit=${LIST_MAX}`, CHART_MAX);
      chartData = all;
      chartedAt = Date.now();
      const note = path ? `(the first ${CHART_MAX} executions)` : "";
      $("#timeline-note").textContent = note;
      $("#durations-note").textContent = note;
      drawCharts();
    }
    let resizing = null;
    window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(drawCharts, 150); });

    async function refresh(charts) {
      render((await get(base)).data);
      await loadExecutions();
      if (charts) await loadCharts();
    }
    const live = poller(async () => {
      await refresh(Date.now() - chartedAt >= CHART_EVERY_MS);
      if (ACTIVE.has(result.status)) return true;
      await loadCharts();  // the final picture
      return false;
    });
    loaded(refresh(true).then(() => { if (ACTIVE.has(result.status)) live.start(); }));

    // change a running run's parallelism and priority (PATCH): for its executions not yet started
    const changeForm = $("#change-form");
    let changeShown = false;
    function changeControl(r) {
      const open = ACTIVE.has(r.status) && !r.cancel_requested;
      if (open && !changeShown) {  // filled when it appears, not while someone types in it
        changeForm.elements.namedItem("parallelism").value = r.parallelism ?? "";
        changeForm.elements.namedItem("priority").value = r.priority ?? "";
      }
      changeShown = open;
      changeForm.hidden = !open;
    }
    changeForm.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(changeForm, async () => {
        const changes = {};
        const par = value(changeForm, "parallelism"), pri = value(changeForm, "priority");
        const asNumber = (raw) => (Number.isFinite(Number(raw)) ? Number(raw) : raw);
        const parNew = par === "" || par.toLowerCase() === "none" ? null : asNumber(par);
        if (parNew !== (result.parallelism ?? null)) changes.parallelism = parNew;
        if (pri !== "" && asNumber(pri) !== result.priority) changes.priority = asNumber(pri);
        if (!Object.keys(changes).length) {
          flash("Nothing to change: those are the run's values now.");
          return;
        }
        render((await call("PATCH", base, {body: changes})).data);
        flash(`Changed ${Object.entries(changes).map(([k, v]) => `${k} to ${v ?? "no limit"}`).join(" and ")}` +
              ": executions not yet started are held to it.");
        live.start();
      });
    });

    cancel.addEventListener("click", async () => {
      const question = `Cancel result ${short(id)}? Queued executions will not start and running ones are stopped.`;
      if (!window.confirm(question)) return;
      cancel.disabled = true;
      try {
        render((await call("POST", base, {body: {operation: "CANCEL"}})).data);
        flash("Cancel requested: queued executions are cancelled; running ones are being stopped.");
        live.start();
      } catch (err) {
        if (err.status !== 401) flash(`Cancel failed: ${err.message}`, true);
      } finally {
        cancel.disabled = false;
      }
    });
    remove.addEventListener("click", async () => {
      const question = `Delete result ${short(id)}? Its executions and their output are deleted with it.`;
      if (!window.confirm(question)) return;
      remove.disabled = true;
      try {
        await call("DELETE", base);
        location.assign("/ui/results");
      } catch (err) {
        if (err.status !== 401) flash(`Delete refused: ${err.message}`, true);
        remove.disabled = false;
      }
    });
    rerun.addEventListener("click", async () => {
      rerun.disabled = true;
      try {
        const {data} = await call("POST", base, {body: {operation: "RERUN_FAILED"}});
        location.assign(`/ui/results/${enc(data.result_id)}`);
      } catch (err) {
        if (err.status !== 401) flash(`Rerun failed: ${err.message}`, true);
        rerun.disabled = false;
      }
    });
  }

  // ------------------------------------------------------------------ one execution

  function executionPage() {
    const resultId = body.dataset.resultId;
    const detailId = body.dataset.detailId;
    const base = `/result/${enc(resultId)}/detail/${enc(detailId)}/`;
    const link = $("#result-link");
    link.href = `/ui/results/${enc(resultId)}`;
    link.textContent = short(resultId);
    const logState = $("#log-state");
    const cancel = $("#cancel");
    let detail = null;
    let cancelAsked = false;

    function render(d) {
      detail = d;
      document.title = `Execution #${d.index} · Stevedore`;
      fill($("#title"), `Execution #${d.index} `, badge(d.status));
      fields($("#fields"), [
        ["Status", executionStatus(d)],
        ["Exit code", d.exit_code ?? "—"],
        ["Runner", d.runner ? mono(d.runner) : "—"],
        (d.gpu_ids || []).length && ["GPUs", mono(d.gpu_ids.join(", "))],
        ["Attempt", d.attempt || "—"],
        ["Submitted", timeEl(d.submitted_at)],
        ["Started", timeEl(d.start)],
        ["Ended", timeEl(d.end)],
        ["Duration", fmtDuration(d.duration)],
        d.params && ["Parameters", ownParams(d.params)],
        ["Result", resultLink(d.result_id)],
        ["Task", h("a", {class: "mono", href: `/ui/tasks/${enc(d.task_id)}`, text: short(d.task_id)})],
        ["Execution id", mono(d.detail_id)],
      ]);
      const attempts = d.attempts || [];
      $("#attempts-card").hidden = attempts.length === 0;
      const {el, tbody} = table(["Attempt", "Status", "Exit", "Runner", "Started", "Duration"]);
      for (const a of attempts) {
        tbody.append(h("tr", {},
          td("Attempt", a.attempt, "num"),
          td("Status", executionStatus(a)),
          td("Exit", a.exit_code ?? "—", "num"),
          td("Runner", a.runner ? mono(a.runner) : "—"),
          td("Started", timeEl(a.start), "nowrap"),
          td("Duration", fmtDuration(a.duration), "num")));
      }
      fill($("#attempts"), el);
      cancel.hidden = !ACTIVE.has(d.status) || cancelAsked;
    }

    // logs: a snapshot from GET .../logs/, or pieces as they come from the ?follow=true stream
    const panes = {stdout: $("#stdout"), stderr: $("#stderr")};
    for (const stream of ["stdout", "stderr"]) $(`#${stream}-raw`).href = `${base}logs/${stream}/`;
    function atBottom(pane) { return pane.scrollHeight - pane.scrollTop - pane.clientHeight < 8; }
    function write(stream, nodes, add) {
      const pane = panes[stream];
      if (!pane) return;
      const follow = atBottom(pane);
      if (add) pane.append(nodes); else pane.replaceChildren(nodes);
      if (follow) pane.scrollTop = pane.scrollHeight;
    }
    function showLogs(logs) {
      for (const stream of ["stdout", "stderr"]) {
        const text = logs[stream] || "";
        const omitted = logs[`${stream}_omitted`] || 0;
        if (omitted) {  // the stream's first bytes, the mark of those left out, its last bytes
          const [head, tail] = splitChars(text, logs[`${stream}_head_chars`] || 0);
          write(stream, outputNodes(head), false);
          write(stream, h("span", {class: "omitted", text: `\n[${omitted} bytes not kept]\n`}), true);
          write(stream, outputNodes(tail), true);
        } else {
          write(stream, outputNodes(text), false);
        }
        $(`#${stream}-note`).textContent = omitted ? `(${omitted} bytes in the middle not kept)`
          : logs[`${stream}_truncated`] ? "(only the last part is kept)" : "";
      }
    }

    /* ?follow=true streams server-sent events (services/gateway/follow.py): it replays what is
     * kept, then `stdout` / `stderr` bring new lines, `attempt` starts a retry's output afresh,
     * `skipped` counts bytes not kept, and `end` closes it.  Without a stream (or when it breaks)
     * the logs are asked for every second instead. */
    let source = null;
    function closeStream() {
      if (source) source.close();
      source = null;
      live.start();  // the final status and logs come from the API
    }
    function followStream() {
      if (!window.EventSource) return;
      const clear = () => { write("stdout", outputNodes(""), false); write("stderr", outputNodes(""), false); };
      source = new EventSource(`${base}logs/?follow=true`);
      source.onopen = () => { clear(); logState.textContent = "following live"; };
      for (const stream of ["stdout", "stderr"]) {
        source.addEventListener(stream, (event) => write(stream, outputNodes(`${event.data}\n`), true));
      }
      source.addEventListener("attempt", clear);
      source.addEventListener("skipped", (event) => {
        const {stream, bytes} = JSON.parse(event.data);
        write(stream, h("span", {class: "omitted", text: `[${bytes} bytes not kept]\n`}), true);
      });
      source.addEventListener("end", closeStream);
      source.onerror = () => {
        logState.textContent = "refreshing every second";
        closeStream();
      };
    }

    const live = poller(async () => {
      render((await get(base)).data);
      if (!source || TERMINAL.has(detail.status)) showLogs((await get(`${base}logs/`)).data);
      if (ACTIVE.has(detail.status)) return true;
      if (source) source.close();
      source = null;
      logState.textContent = "";
      return false;
    });

    loaded(Promise.all([get(base), get(`${base}logs/`)]).then(([d, logs]) => {
      render(d.data);
      showLogs(logs.data);
      if (ACTIVE.has(detail.status)) {
        logState.textContent = "refreshing every second";
        followStream();
        live.start();
      }
    }));

    cancel.addEventListener("click", async () => {
      if (!window.confirm(`Cancel execution #${detail.index}? If it is running, it is stopped.`)) return;
      cancel.disabled = true;
      try {
        render((await call("POST", base, {body: {operation: "CANCEL"}})).data);
        cancelAsked = true;
        cancel.hidden = true;
        flash("Cancel requested: the execution is being stopped.");
        live.start();
      } catch (err) {
        if (err.status !== 401) flash(`Cancel failed: ${err.message}`, true);
      } finally {
        cancel.disabled = false;
      }
    });
  }

  // ------------------------------------------------------------------ sign in

  function signinPage() {
    const form = $("#signin-form");
    form.elements.namedItem("next").value = body.dataset.next || "/ui/tasks";
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(form, async () => {
        const token = value(form, "token");
        if (!token) throw new ApiError(400, {message: "token: enter an API token"});
        try {
          await call("GET", "/task/?limit=1", {token});
        } catch (err) {
          if (err.status !== 401) throw err;
          throw new ApiError(400, {message: "token: the gateway does not accept this token"});
        }
        form.submit();  // the gateway starts a session (its cookie) and sends us on
      });
    });
    form.elements.namedItem("token").focus();
    if (body.dataset.error) showError(form, new ApiError(401, {message: `token: ${body.dataset.error}`}));
    body.dataset.loaded = "true";
  }

  // ------------------------------------------------------------------ start

  const PAGES = {
    tasks: tasksPage, task: taskPage, results: resultsPage, result: resultPage,
    execution: executionPage, signin: signinPage,
  };
  const section = {tasks: "tasks", task: "tasks", results: "results", result: "results", execution: "results",
                   schedules: "schedules", schedule: "schedules", runners: "runners",
                   tokens: "tokens", secrets: "secrets", audit: "audit", teams: "teams"};
  // pages kept in files of their own (schedules.js) register in ui.pages, with these helpers to build on
  const ui = window.Stevedore = {
    pages: {}, h, fill, call, get, getAll, flash, trouble, loaded, poller, submitting, showError, value, fields, table,
    pagedTable, td, mono, timeEl, fmtTime, short, enc, resultLink, badge, parseEnv, ApiError, PAGE,
    chips, parseLabels, refusal, pickedTeam, pickTeam, me: null,
  };
  document.addEventListener("DOMContentLoaded", start);  // after every deferred script has registered

  /* Who is signed in (GET /whoami/): shown in the account bar (account.js), and what the role may do
   * marks <body> so the controls it may not use are not shown (app.css). */
  async function whoami() {
    let me;
    try {
      me = (await get("/whoami/")).data;
    } catch (err) {
      if (err.status === 401) throw err;
      if (err.status === 403 && pickedTeam()) {  // a pick this principal may not make (signed in as another)
        pickTeam("");
        return whoami();
      }
      flash(`Who is signed in is not known now (${err.message}); the gateway still checks every action.`, true);
      body.dataset.role = "unknown";
      return null;
    }
    ui.me = me;
    const may = {
      run: me.role === "admin" || me.role === "member",
      change: me.role !== "viewer",
      admin: me.role === "admin",
      audit: me.role === "admin" || me.role === "operator",
      secrets: me.role === "admin" || me.role === "member",
    };
    for (const [what, yes] of Object.entries(may)) body.classList.toggle(`no-${what}`, !yes);
    body.dataset.role = me.role;
    if (ui.account) ui.account(me);
    return me;
  }

  function start() {
  const current = document.querySelector(`[data-nav="${section[body.dataset.page]}"]`);
  if (current) current.setAttribute("aria-current", "page");
  const page = PAGES[body.dataset.page] || ui.pages[body.dataset.page];
  if (!page) {
    whoami().finally(() => { body.dataset.loaded = "true"; });
  } else {
    const spec = fetch("/openapi.json", {credentials: "same-origin"}).then((answer) => {
      if (!answer.ok) throw new Error(`the API's description answered ${answer.status}`);
      return answer.json();
    });
    Promise.all([spec, body.dataset.page === "signin" ? null : whoami()]).then(([described]) => {
      learn(described);
      page();
    }).catch((err) => {
      flash(`The page cannot start: ${err.message}`, true);
      body.dataset.loaded = "true";
    });
  }
  }
})();
