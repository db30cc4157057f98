/* Stevedore web UI: the runners page (GET /runner/: labels, slots busy and free, GPUs, last heartbeat).
 *
 * Built on the helpers app.js hands out as window.Stevedore; it registers its page there and app.js
 * starts the one <body data-page> names.  Text from the API only ever goes in as textContent.
 */
"use strict";
(function () {
  const ui = window.Stevedore;
  if (!ui) return;
  const {h, loaded, pagedTable, td, mono, timeEl, PAGE} = ui;
  const $ = (selector) => document.querySelector(selector);

  const labelList = (labels) => {
    const entries = Object.entries(labels || {});
    if (!entries.length) return h("span", {class: "muted", text: "none"});
    return entries.map(([k, v]) => h("span", {class: "badge label mono", "data-label": k, text: `${k}=${v}`}));
  };

  function row(r) {
    const slots = r.slots === null || r.slots === undefined ? "?" : r.slots;
    const busy = r.busy === null || r.busy === undefined ? "?" : r.busy;
    return h("tr", {"data-runner-id": r.runner_id, "data-status": r.status},
      td("Runner", mono(r.runner_id)),
      td("Status", h("span", {class: `badge s-${r.status === "LIVE" ? "RUNNING" : "ERROR"}`, text: r.status})),
      td("Labels", labelList(r.labels)),
      td("Slots", `${busy} busy / ${slots}`),
      td("GPUs", r.gpus.length ? `${r.gpus_free} free of ${r.gpus.join(", ")}` : "none"),
      td("Last heartbeat", timeEl(r.last_heartbeat), "nowrap"),
      td("Engine", r.engine || "—"));
  }

  function runnersPage() {
    const mount = $("#runners");
    const headers = ["Runner", "Status", "Labels", "Slots", "GPUs", "Last heartbeat", "Engine"];
    const list = pagedTable(mount, headers, "No runner has been heard from yet.",
      (data) => data.forEach((r) => list.tbody.append(row(r))));
    loaded(list.load(`/runner/?limit=${PAGE}`));
    const live = ui.poller(async () => {  // the first page again, as runners come and go
      const {data} = await ui.get(`/runner/?limit=${PAGE}`);
      list.tbody.replaceChildren(...data.map(row));
      list.shown();
      return true;
    }, 3000);
    live.start();
  }

  ui.pages.runners = runnersPage;
})();
