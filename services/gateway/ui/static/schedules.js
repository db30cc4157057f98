/* Stevedore web UI: the schedules pages (a list with an add form, and one schedule with its fires).
 *
 * Built on the helpers app.js hands out as window.Stevedore; it registers its pages there and
 * app.js starts the one <body data-page> names.  Text from the API only ever goes in as textContent.
 */
"use strict";
(function () {
  const ui = window.Stevedore;
  if (!ui) return;
  const {h, fill, call, get, getAll, flash, loaded, submitting, value, fields, table, pagedTable, td, mono,
         timeEl, short, enc, resultLink, parseEnv, ApiError, PAGE} = ui;
  const $ = (selector) => document.querySelector(selector);

  const nextRun = (s) => (s.suspend ? h("span", {class: "muted", text: "suspended"}) : timeEl(s.next_run_at));
  const scheduleLink = (s) => h("a", {class: "mono", href: `/ui/schedules/${enc(s.schedule_id)}`,
                                      text: s.name || short(s.schedule_id)});

  function schedulesPage() {
    const form = $("#schedule-form");
    const tasks = new Map();
    const list = pagedTable($("#schedules"), ["Schedule", "Task", "Cron", "Policy", "Next run", "Fired", "Failed"],
      "No schedules yet: add one above.", (data) => data.forEach((s) => list.tbody.append(row(s))));

    function row(s) {
      const task = tasks.get(s.task_id);
      return h("tr", {"data-schedule-id": s.schedule_id},
        td("Schedule", scheduleLink(s)),
        td("Task", h("a", {href: `/ui/tasks/${enc(s.task_id)}`, text: task ? task.name : short(s.task_id)})),
        td("Cron", mono(`${s.cron} (${s.timezone})`)),
        td("Policy", s.concurrency_policy),
        td("Next run", nextRun(s), "nowrap"),
        td("Fired", String(s.counts.fired)),
        td("Failed", String(s.counts.failed)));
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(form, async () => {
        const run = {};
        const times = value(form, "run.times");
        run.times = /^\d+$/.test(times) ? Number(times) : times;
        const command = value(form, "run.command");
        if (command) run.command = command;
        const env = parseEnv(form.elements.namedItem("run.env").value);
        if (Object.keys(env).length) run.env = env;
        const labels = ui.parseLabels ? ui.parseLabels(value(form, "run.labels")) : {};
        if (Object.keys(labels).length) run.labels = labels;
        const payload = {task_id: value(form, "task_id"), cron: value(form, "cron"), run,
                         concurrency_policy: value(form, "concurrency_policy")};
        if (!payload.task_id) throw new ApiError(400, {message: "task_id: choose a task"});
        for (const name of ["name", "timezone"]) if (value(form, name)) payload[name] = value(form, name);
        const {data} = await call("POST", "/schedule/", {body: payload});
        form.reset();
        list.tbody.prepend(row(data));
        list.shown();
        flash(["Added schedule ", data.name || short(data.schedule_id), `; next run ${ui.fmtTime(data.next_run_at)}.`]);
      });
    });

    loaded(getAll("/task/?limit=1000", 1000).then(({data}) => {
      const select = form.elements.namedItem("task_id");
      for (const task of data) {
        tasks.set(task.task_id, task);
        select.append(h("option", {value: task.task_id, text: `${task.name} (${task.status})`}));
      }
      return list.load(`/schedule/?limit=${PAGE}`);
    }));
  }

  function firesTable(mount, fires, emptyText) {
    if (!fires.length) {
      fill(mount, h("p", {class: "empty", text: emptyText}));
      return;
    }
    const {el, tbody} = table(["Tick", "Kind", "Outcome", "Result", "Missed", "Reason"], true);
    for (const f of fires) {
      tbody.append(h("tr", {"data-outcome": f.outcome},
        td("Tick", timeEl(f.scheduled_for), "nowrap"),
        td("Kind", f.manual ? "run now" : "tick"),
        td("Outcome", h("span", {class: `badge o-${f.outcome}`, text: f.outcome})),
        td("Result", f.result_id ? resultLink(f.result_id) : "—"),
        td("Missed", f.missed ? String(f.missed) : ""),
        td("Reason", f.reason || "", "wrap-any")));
    }
    fill(mount, el);
  }

  function schedulePage() {
    const id = document.body.dataset.scheduleId;
    const base = `/schedule/${enc(id)}/`;
    const suspend = $("#schedule-suspend"), resume = $("#schedule-resume");
    const runNow = $("#schedule-run"), remove = $("#schedule-delete");

    function render(s) {
      fill($("#schedule-title"), s.name || short(s.schedule_id));
      const c = s.counts;
      fields($("#schedule-fields"), [
        ["Id", mono(s.schedule_id)],
        ["Task", h("a", {class: "mono", href: `/ui/tasks/${enc(s.task_id)}`, text: short(s.task_id)})],
        ["Cron", mono(s.cron)],
        ["Timezone", s.timezone],
        ["Policy", s.concurrency_policy],
        ["Next run", nextRun(s)],
        ["Last fire", timeEl(s.last_fire_at)],
        s.last_result_id && ["Last run", resultLink(s.last_result_id)],
        s.starting_deadline_seconds && ["Starting deadline", `${s.starting_deadline_seconds} s`],
        ["Fires", `${c.fired} fired, ${c.skipped} skipped, ${c.missed} missed, ${c.failed} failed`],
        Object.keys((s.run || {}).labels || {}).length && ["Labels", ui.chips(s.run.labels)],
        ["Runs with", mono(JSON.stringify(s.run))],
      ]);
      suspend.hidden = s.suspend;
      resume.hidden = !s.suspend;
      firesTable($("#failed-fires"), s.failed_fires || [], "No failed fires.");
      firesTable($("#fires"), s.fires || [], "It has not fired yet.");
    }

    const refresh = () => get(base).then(({data}) => render(data));
    async function act(button, action, done) {
      button.disabled = true;
      try {
        await action();
        flash(done);
        await refresh();
      } catch (err) {
        if (err.status !== 401) flash(`${button.textContent} failed: ${err.message}`, true);
      } finally {
        button.disabled = false;
      }
    }
    suspend.addEventListener("click", () => act(suspend, () => call("PATCH", base, {body: {suspend: true}}),
                                                "Suspended: no tick fires until it is resumed."));
    resume.addEventListener("click", () => act(resume, () => call("PATCH", base, {body: {suspend: false}}),
                                               "Resumed from its next tick."));
    runNow.addEventListener("click", () => act(runNow, async () => {
      const {data} = await call("POST", base, {body: {operation: "RUN"}});
      runNow.dataset.resultId = data.result_id;
    }, "Started a run now."));
    remove.addEventListener("click", async () => {
      if (!window.confirm("Delete this schedule? The runs it started stay.")) return;
      remove.disabled = true;
      try {
        await call("DELETE", base);
        location.assign("/ui/schedules");
      } catch (err) {
        remove.disabled = false;
        if (err.status !== 401) flash(`Delete failed: ${err.message}`, true);
      }
    });
    loaded(refresh());
    const live = ui.poller(async () => { await refresh(); return true; }, 2000);
    live.start();
  }

  ui.pages.schedules = schedulesPage;
  ui.pages.schedule = schedulePage;
})();
