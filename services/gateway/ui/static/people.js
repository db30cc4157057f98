/* Stevedore web UI: who is signed in (the account bar on every page, with an admin's or operator's team
 * picker) and the pages of principals' tokens, secrets, the audit log and teams (issue 18).
 *
 * Built on the helpers app.js hands out as window.Stevedore.  Text from the API only ever goes in as
 * textContent.  A secret's value is read from its password field once, sent, and the field emptied: it is
 * never put back in the page.  A new token is shown once, in a read-only field, until "Done".
 */
"use strict";
(function () {
  const ui = window.Stevedore;
  if (!ui) return;
  const {h, fill, call, get, flash, loaded, submitting, value, pagedTable, td, mono, timeEl, enc, ApiError,
         PAGE} = ui;
  const $ = (selector) => document.querySelector(selector);

  // ------------------------------------------------------------------ the account bar

  function account(me) {
    const bar = $("#account");
    if (!bar) return;
    let team;
    if (me.all_teams) {  // admin, operator: any team, or none picked (every team's lists)
      const picked = ui.pickedTeam();
      const select = h("select", {id: "team-picker", "aria-label": "Act for team"},
        h("option", {value: "", text: "all teams"}));
      const names = new Set(me.teams || []);
      if (picked) names.add(picked);
      for (const name of [...names].sort()) select.append(h("option", {value: name, text: name}));
      select.value = picked;
      select.addEventListener("change", () => {
        ui.pickTeam(select.value);
        location.reload();  // every list again, for the team picked
      });
      team = [h("label", {for: "team-picker", text: "acting for"}), select,
              h("span", {"data-who": "team", hidden: true, text: me.team})];
    } else {
      team = ["team", h("strong", {"data-who": "team", text: me.team})];
    }
    fill(bar, "Signed in as", h("strong", {"data-who": "principal", text: me.principal}),
         h("span", {class: "role", "data-who": "role", text: me.role}), team);
    bar.hidden = false;
  }
  ui.account = account;

  /* A button's action: disabled while it runs, its failure said plainly. */
  async function act(button, action) {
    button.disabled = true;
    try {
      await action();
    } catch (err) {
      if (err.status !== 401) flash(`${button.textContent} failed: ${ui.refusal(err)}`, true);
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ tokens (admin)

  function tokensPage() {
    const form = $("#token-form"), once = $("#token-once"), shown = $("#token-value");
    const headers = ["Principal", "Team", "Role", "Status", "Created", "Expires", "Last used", "Token id", ""];
    const list = pagedTable($("#tokens"), headers, "No principal's tokens yet.",
      (data) => data.forEach((t) => list.tbody.append(row(t))));

    function row(t) {
      const revoke = h("button", {type: "button", class: "danger", "data-needs": "admin",
                                  hidden: t.status !== "ACTIVE", text: "Revoke"});
      const tr = h("tr", {"data-token-id": t.token_id, "data-status": t.status},
        td("Principal", [t.principal, " ", h("span", {class: "muted", text: `(${t.kind || "service"})`})]),
        td("Team", t.team), td("Role", t.role),
        td("Status", h("span", {class: `badge s-${t.status === "ACTIVE" ? "READY" : "ERROR"}`, text: t.status})),
        td("Created", timeEl(t.created_at), "nowrap"),
        td("Expires", t.expires_at ? timeEl(t.expires_at) : "never", "nowrap"),
        td("Last used", t.last_used_at ? timeEl(t.last_used_at) : "—", "nowrap"),
        td("Token id", mono(t.token_id)), td("", revoke));
      revoke.addEventListener("click", () => {
        if (!window.confirm(`Revoke this token of ${t.principal}? Every gateway refuses it at once.`)) return;
        act(revoke, async () => {
          await call("DELETE", `/token/${enc(t.token_id)}/`);
          tr.replaceWith(row({...t, status: "REVOKED", revoked_at: Date.now() / 1000}));
          flash(["Revoked the token of ", t.principal, "."]);
        });
      });
      return tr;
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(form, async () => {
        const payload = {name: value(form, "name"), team: value(form, "team"), role: value(form, "role"),
                         kind: value(form, "kind")};
        const days = value(form, "expires");
        if (days) {
          if (!/^\d+(\.\d+)?$/.test(days)) throw new ApiError(400, {message: "expires: a number of days"});
          payload.expires = Math.round(Number(days) * 86400);
        }
        const {data} = await call("POST", "/token/", {body: payload});
        form.reset();
        shown.value = data.token;  // shown this once: not kept anywhere else by the page
        once.hidden = false;
        shown.select();
        const {token, ...listed} = data;
        list.tbody.prepend(row(listed));
        list.shown();
        flash(["Made a token for ", data.principal, ` (${data.role} of ${data.team}).`]);
      });
    });
    $("#token-copy").addEventListener("click", async () => {
      shown.select();
      try {
        await navigator.clipboard.writeText(shown.value);
      } catch (err) {
        document.execCommand("copy");  // no clipboard API (not a secure context): the selection
      }
      flash("Copied the token.");
    });
    $("#token-done").addEventListener("click", () => {
      shown.value = "";
      once.hidden = true;
    });
    loaded(list.load(`/token/?limit=${PAGE}`));
  }

  // ------------------------------------------------------------------ secrets

  function secretsPage() {
    const form = $("#secret-form"), input = form.elements.namedItem("value");
    const me = ui.me;
    if (me) $("#secrets-team").textContent = `of team ${me.team}`;
    const headers = ["Name", "Team", "Set", "Set by", "Created by", ""];
    const list = pagedTable($("#secrets"), headers, "No secrets yet.",
      (data) => data.forEach((s) => list.tbody.append(row(s))));

    function row(s) {
      const rotate = h("button", {type: "button", "data-needs": "secrets", text: "Rotate"});
      const remove = h("button", {type: "button", class: "danger", "data-needs": "secrets", text: "Delete"});
      const tr = h("tr", {"data-secret": s.name},
        td("Name", mono(s.name)), td("Team", s.team), td("Set", timeEl(s.updated_at), "nowrap"),
        td("Set by", s.updated_by || "—"), td("Created by", s.created_by || "—"),
        td("", h("span", {class: "buttons"}, rotate, remove)));
      rotate.addEventListener("click", () => {
        form.elements.namedItem("name").value = s.name;
        input.focus();
      });
      remove.addEventListener("click", () => {
        if (!window.confirm(`Delete secret ${s.name}? Executions naming it that have not started end ERROR.`)) return;
        act(remove, async () => {
          await call("DELETE", `/secret/${enc(s.name)}/`);
          tr.remove();
          list.shown();
          flash(`Deleted secret ${s.name}.`);
        });
      });
      return tr;
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(form, async () => {
        const name = value(form, "name");
        if (!name) throw new ApiError(400, {message: "name: enter the secret's name"});
        const secret = input.value;  // exactly as typed: spaces are part of it
        if (!secret) throw new ApiError(400, {message: "value: enter the value"});
        let data;
        try {
          ({data} = await call("PUT", `/secret/${enc(name)}/`, {body: {value: secret}}));
        } finally {
          input.value = "";  // never left in the page, saved or not
        }
        form.reset();
        const old = list.tbody.querySelector(`tr[data-secret="${CSS.escape(data.name)}"]`);
        if (old) old.replaceWith(row(data));
        else list.tbody.prepend(row(data));
        list.shown();
        flash(`${old ? "Rotated" : "Saved"} secret ${data.name}: its value is not shown again.`);
      });
    });
    loaded(list.load(`/secret/?limit=${PAGE}`));
  }

  // ------------------------------------------------------------------ audit log (admin, operator)

  const FILTERS = ["principal", "action", "target_type", "target_id", "team"];

  function summaryText(summary) {
    return Object.entries(summary || {}).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join(", ");
  }

  function auditPage() {
    const form = $("#audit-filters");
    const headers = ["When", "Principal", "Team", "Action", "Target", "Summary", "Outcome", "Address"];
    let list;
    const params = new URLSearchParams(location.search);
    for (const name of FILTERS) form.elements.namedItem(name).value = params.get(name) || "";

    function row(e) {
      return h("tr", {"data-audit-id": e.audit_id, "data-action": e.action},
        td("When", timeEl(e.at), "nowrap"),
        td("Principal", [e.principal, " ", h("span", {class: "muted", text: `(${e.role})`})]),
        td("Team", e.team || "—"), td("Action", mono(e.action)),
        td("Target", [e.target_type, " ", e.target_id ? mono(e.target_id) : ""]),
        td("Summary", summaryText(e.summary), "wrap-any"),
        td("Outcome", e.outcome || ""), td("Address", e.address || "—"));
    }

    function query() {
      const q = new URLSearchParams({limit: String(PAGE)});
      for (const name of FILTERS) if (value(form, name)) q.set(name, value(form, name));
      return q;
    }

    function load() {
      list = pagedTable($("#audit"), headers, "No changes recorded that match.",
        (data) => data.forEach((e) => list.tbody.append(row(e))));
      return list.load(`/audit/?${query()}`);
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(form, async () => {
        const q = query();
        q.delete("limit");
        history.replaceState(null, "", `/ui/audit${q.toString() ? "?" + q : ""}`);
        await load();
      });
    });
    loaded(load());
  }

  // ------------------------------------------------------------------ teams

  function quota(text, name) {
    if (text === "") return undefined;
    if (/^none$/i.test(text)) return null;
    if (!/^\d+$/.test(text)) throw new ApiError(400, {message: `${name}: a whole number, or none`});
    return Number(text);
  }

  function teamsPage() {
    const form = $("#team-form");
    const headers = ["Team", "Weight", "Running", "Queued", "Max running", "Max queued", "Created"];
    const known = new Map();
    const list = pagedTable($("#teams"), headers, "No teams you may see.",
      (data) => data.forEach((t) => list.tbody.append(row(t))));
    const none = (n) => (n === null || n === undefined ? "none" : String(n));

    function row(t) {
      known.set(t.name, t);
      return h("tr", {"data-team": t.name},
        td("Team", mono(t.name)), td("Weight", String(t.weight)),
        td("Running", String(t.running)), td("Queued", String(t.queued)),
        td("Max running", none(t.max_running)), td("Max queued", none(t.max_queued)),
        td("Created", timeEl(t.created_at), "nowrap"));
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(form, async () => {
        const name = value(form, "name");
        const body = {};
        const weight = value(form, "weight");
        if (weight) body.weight = /^\d+(\.\d+)?$/.test(weight) ? Number(weight) : weight;
        for (const field of ["max_running", "max_queued"]) {
          const given = quota(value(form, field), field);
          if (given !== undefined) body[field] = given;
        }
        let data;
        if (known.has(name)) {
          ({data} = await call("PATCH", `/team/${enc(name)}/`, {body}));
        } else {
          ({data} = await call("POST", "/team/", {body: {name, ...body}}));
        }
        const old = list.tbody.querySelector(`tr[data-team="${CSS.escape(data.name)}"]`);
        if (old) old.replaceWith(row(data));
        else list.tbody.prepend(row(data));
        list.shown();
        form.reset();
        flash(`Saved team ${data.name}.`);
      });
    });
    loaded(list.load(`/team/?limit=${PAGE}`));
  }

  Object.assign(ui.pages, {tokens: tokensPage, secrets: secretsPage, audit: auditPage, teams: teamsPage});
})();
