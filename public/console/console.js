// joingate operator console (contract section 16): plain DOM, no library, every figure from
// an answer of this Worker's API. The token is typed into the page and kept in this tab's
// sessionStorage only; it travels in the Authorization header, never in a URL.
//
// Requests are bounded: at most 12 in any 60 s (the log of what was sent is kept in the
// tab too, so a reload does not reset it). The selected session is refreshed every 15 s,
// only while the tab is visible, and only when the budget has room; clicks come first.
"use strict";

(() => {
  const TOKEN_KEY = "joingate.console.token";
  const SENT_KEY = "joingate.console.sent";
  const BUDGET = 12;
  const WINDOW_MS = 60_000;
  const POLL_MS = 15_000;
  const ADMIN_POLL_MS = 30_000;
  const PAGE = 50;

  // ---- DOM ---------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  /** An element: `props` are properties, listeners (onclick…), class, dataset or attributes (aria-…, role); children are nodes or text. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props ?? {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key.startsWith("aria-") || key === "role" || key === "for" || key === "list") el.setAttribute(key, value === true ? "true" : String(value));
      else el[key] = value;
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  /**
   * Replaces a container's content, keeping the focus on the element with the same
   * `data-key` (a button pressed inside a panel that is drawn again keeps the focus).
   */
  function fill(container, ...children) {
    const active = document.activeElement;
    const key = active && container.contains(active) ? active.dataset.key : undefined;
    container.replaceChildren();
    append(container, children);
    if (key) {
      const again = [...container.querySelectorAll("[data-key]")].find((el) => el.dataset.key === key);
      if (again) again.focus();
    }
  }

  function time(value) {
    if (value === undefined || value === null) return null;
    const date = new Date(value);
    const text = Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
    return h("time", { dateTime: String(value), title: String(value) }, text);
  }

  const orNone = (node, none = "none") => node ?? h("span", { class: "muted" }, none);

  function errorBox(error) {
    return h("p", { class: "error", role: "alert" }, error.message);
  }

  const empty = (text) => h("p", { class: "empty" }, text);

  const actionsHead = () => h("span", { class: "sr-only" }, "Actions");

  function table(caption, head, rows, { key } = {}) {
    return h(
      "div",
      { class: "table-wrap", dataset: key ? { table: key } : undefined },
      h(
        "table",
        null,
        h("caption", { class: "sr-only" }, caption),
        h("thead", null, h("tr", null, head.map((label) => h("th", { scope: "col" }, label)))),
        h("tbody", null, rows),
      ),
    );
  }

  // ---- tokens ------------------------------------------------------------------------

  /** Section 16: an API token starts `jg_`, a login token is three base64url parts, else admin. */
  function tokenForm(token) {
    if (token.startsWith("jg_")) return "api_token";
    if (/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) return "login";
    return "admin";
  }

  // ---- requests, within the budget ----------------------------------------------------

  class ApiError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  let sent = readSent();
  const queue = [];
  let pumpTimer = null;
  let generation = 0;
  let token = null;

  function readSent() {
    try {
      const list = JSON.parse(sessionStorage.getItem(SENT_KEY) ?? "[]");
      return Array.isArray(list) ? list.filter((t) => typeof t === "number") : [];
    } catch {
      return [];
    }
  }

  function recent() {
    const now = Date.now();
    sent = sent.filter((t) => t > now - WINDOW_MS && t <= now + 1000);
    return sent;
  }

  /** Requests that may still be sent in this minute, counting those already waiting. */
  const room = () => BUDGET - recent().length - queue.length;

  function pump() {
    clearTimeout(pumpTimer);
    pumpTimer = null;
    while (queue.length && recent().length < BUDGET) {
      sent.push(Date.now());
      queue.shift().start();
    }
    sessionStorage.setItem(SENT_KEY, JSON.stringify(sent));
    if (queue.length) {
      const wait = sent[0] + WINDOW_MS - Date.now() + 50;
      pumpTimer = setTimeout(pump, Math.max(wait, 50));
    }
    showBudget();
  }

  function showBudget() {
    $("budget").textContent = queue.length
      ? `${queue.length} request${queue.length === 1 ? "" : "s"} waiting: this page sends at most ${BUDGET} a minute.`
      : "";
  }

  /**
   * One API call with the token. Resolves to the envelope's `data`; rejects with an
   * ApiError carrying the envelope's message. `urgent` (a click) goes before waiting polls.
   */
  function api(method, path, { body, urgent = false } = {}) {
    const mine = generation;
    const bearer = token;
    return new Promise((resolve, reject) => {
      const entry = {
        start() {
          const headers = { Authorization: `Bearer ${bearer}`, Accept: "application/json" };
          const init = { method, headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" };
          if (body !== undefined) {
            headers["Content-Type"] = "application/json";
            init.body = JSON.stringify(body);
          }
          fetch(path, init)
            .then(async (response) => {
              const text = await response.text();
              let envelope;
              try {
                envelope = JSON.parse(text);
              } catch {
                throw new ApiError(`joingate answered HTTP ${response.status} without its JSON envelope.`, response.status);
              }
              if (mine !== generation) throw new ApiError("The token changed.", 0, "stale");
              if (envelope && envelope.success === true) return resolve(envelope.data);
              const error = envelope?.error ?? {};
              throw new ApiError(error.message ?? `joingate answered HTTP ${response.status}.`, response.status, error.code);
            })
            .catch((error) => {
              if (error instanceof ApiError) return reject(error);
              reject(new ApiError(`joingate could not be reached: ${error.message}`, 0, "network"));
            });
        },
      };
      if (urgent) queue.unshift(entry);
      else queue.push(entry);
      pump();
    });
  }

  const enc = encodeURIComponent;
  const query = (params) => {
    const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
    return pairs.length ? `?${pairs.map(([k, v]) => `${k}=${enc(v)}`).join("&")}` : "";
  };

  // ---- sign in and out ---------------------------------------------------------------

  let stopPolling = () => {};

  function signIn(value) {
    token = value;
    generation += 1;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("signin").hidden = true;
    $("who").hidden = false;
    if (tokenForm(value) === "admin") adminView();
    else tenantView();
  }

  function forget() {
    token = null;
    generation += 1;
    queue.length = 0;
    stopPolling();
    stopPolling = () => {};
    sessionStorage.removeItem(TOKEN_KEY);
    fill($("view"));
    $("who").hidden = true;
    $("who-text").textContent = "";
    $("signin").hidden = false;
    $("signin-error").hidden = true;
    $("token-input").value = "";
    $("token-input").focus();
    showBudget();
  }

  /** A token that does not open anything: back to the form with the envelope's message. */
  function refused(error) {
    const message = error.message;
    forget();
    $("signin-error").textContent = message;
    $("signin-error").hidden = false;
  }

  /** Runs `fn` every `ms` while the tab is visible, and once when it becomes visible again late. */
  function every(ms, fn) {
    let last = Date.now();
    const tick = () => {
      if (document.visibilityState !== "visible") return;
      last = Date.now();
      fn();
    };
    const timer = setInterval(tick, ms);
    const onVisible = () => {
      if (document.visibilityState === "visible" && Date.now() - last >= ms) tick();
    };
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      clearInterval(timer);
      document.removeEventListener("visibilitychange", onVisible);
    };
  }

  function panel(id, title, ...children) {
    return h("section", { class: "panel", id, "aria-labelledby": `${id}-title` }, h("h2", { id: `${id}-title` }, title), children);
  }

  function refreshButton(label, key, onclick) {
    return h("button", { type: "button", class: "quiet", dataset: { key }, onclick }, label);
  }

  // ---- tenant view -------------------------------------------------------------------

  const FINISHED = new Set(["completed", "cancelled"]);

  function tenantView() {
    const t = {
      info: null,
      sessions: null,
      sessionsCursor: undefined,
      sessionsError: null,
      statuses: new Map(),
      selected: null,
      // Per session: its jobs and pending joins (or the error), and when each part of it
      // (status, jobs, pending) was last read. Choosing a session again within 15 s reads
      // nothing again.
      cache: new Map(),
      open: new Set(),
      details: new Map(),
      book: null,
      bookCursor: undefined,
      bookError: null,
      actionError: null,
    };
    const can = (cap) => t.info?.capabilities?.includes(cap);
    const entry = (sid) => {
      if (!t.cache.has(sid)) t.cache.set(sid, { jobs: null, jobsError: null, pending: null, pendingError: null, at: {} });
      return t.cache.get(sid);
    };
    const cur = () => entry(t.selected);
    const fresh = (sid, part) => Date.now() - (entry(sid).at[part] ?? -Infinity) < POLL_MS;

    const el = {
      token: h("div"),
      sessions: h("div"),
      detail: h("div"),
      jobs: h("div"),
      pending: h("div"),
      book: h("div"),
    };

    fill($("view"), h("p", { class: "loading" }, "Reading the token…"));
    api("GET", "/v1/token")
      .then((info) => {
        t.info = info;
        $("who-text").textContent = `${info.kind === "login" ? "Login token" : "API token"} of org ${info.org}`;
        layout();
        if (!can("read")) return;
        loadSessions();
        loadBook();
        stopPolling = every(POLL_MS, poll);
      })
      .catch((error) => {
        if (error.code !== "stale") refused(error);
      });

    function layout() {
      drawToken();
      const parts = [panel("token", "Token", el.token)];
      if (!can("read")) {
        parts.push(
          panel(
            "no-read",
            "Nothing to show",
            empty("This token has no read capability: sessions, jobs, pending joins and the group book all need read. Mint a token with read to see them."),
          ),
        );
      } else {
        parts.push(
          panel("sessions", "Sessions", el.sessions),
          h(
            "section",
            { class: "panel", id: "session", "aria-labelledby": "session-title" },
            el.detail,
            h("h3", { id: "jobs-title" }, "Join jobs"),
            el.jobs,
            h("h3", { id: "pending-title" }, "Pending joins"),
            el.pending,
          ),
          panel("book", "Group book", el.book),
        );
      }
      fill($("view"), parts);
      drawSessions();
      drawDetail();
    }

    function drawToken() {
      const i = t.info;
      fill(
        el.token,
        h(
          "dl",
          { class: "facts across" },
          h("dt", null, "Kind"),
          h("dd", null, i.kind === "login" ? "login token (a person)" : "API token"),
          h("dt", null, "Org"),
          h("dd", { dataset: { field: "org" } }, i.org),
          h("dt", null, "Capabilities"),
          h("dd", { dataset: { field: "capabilities" } }, i.capabilities.length ? i.capabilities.join(", ") : "none"),
          h("dt", null, "Sessions"),
          h("dd", null, i.sessions ? i.sessions.join(", ") : "every session of the org"),
          h("dt", null, "Expires"),
          h("dd", null, orNone(time(i.expires_at), "never")),
        ),
      );
    }

    // Sessions: the list, then each one's status.
    function loadSessions(cursor) {
      return api("GET", `/v1/sessions${query({ limit: PAGE, cursor })}`)
        .then((data) => {
          t.sessionsError = null;
          t.sessions = cursor ? [...(t.sessions ?? []), ...data.sessions] : data.sessions;
          t.sessionsCursor = data.next_cursor;
          if (!t.selected && t.sessions.length) t.selected = t.sessions[0].session_id;
          drawSessions();
          if (t.selected && !cursor) loadSelected();
          for (const s of data.sessions) if (s.session_id !== t.selected) loadStatus(s.session_id);
        })
        .catch((error) => {
          if (error.code === "stale") return;
          t.sessionsError = error;
          drawSessions();
        });
    }

    function loadStatus(sid, urgent = false) {
      return api("GET", `/v1/sessions/${enc(sid)}`, { urgent })
        .then((status) => {
          entry(sid).at.status = Date.now();
          const before = t.statuses.get(sid);
          t.statuses.set(sid, status);
          // Nothing is drawn again for an answer that changed nothing.
          if (before && !(before instanceof ApiError) && JSON.stringify(before) === JSON.stringify(status)) return;
          drawSessions();
          if (sid === t.selected) drawDetail();
        })
        .catch((error) => {
          if (error.code === "stale") return;
          t.statuses.set(sid, error);
          drawSessions();
          if (sid === t.selected) drawDetail();
        });
    }

    /** The selected session's status, jobs and pending joins: what is not fresh, or all. */
    function loadSelected(urgent = false, all = false) {
      const sid = t.selected;
      if (all || !fresh(sid, "status")) loadStatus(sid, urgent);
      if (all || !fresh(sid, "jobs")) loadJobs(sid, urgent);
      if (all || !fresh(sid, "pending")) loadPending(sid, urgent);
    }

    function select(sid) {
      if (sid === t.selected) return;
      t.selected = sid;
      t.actionError = null;
      t.open.clear();
      t.details.clear();
      drawSessions();
      drawDetail();
      loadSelected(true);
      $("session-title")?.focus();
    }

    function drawSessions() {
      if (!el.sessions.isConnected) return;
      if (t.sessionsError) return fill(el.sessions, errorBox(t.sessionsError), retry());
      if (!t.sessions) return fill(el.sessions, h("p", { class: "loading" }, "Loading the sessions…"));
      if (!t.sessions.length) {
        return fill(el.sessions, empty(t.info.sessions ? "None of this token's sessions is registered." : `Org ${t.info.org} has no session yet. The admin registers one with PUT /v1/admin/sessions/{sid}.`));
      }
      // A row keeps its session button while its figures change: a click that lands as a
      // status arrives is not lost to a button drawn anew.
      const drawn = [...el.sessions.querySelectorAll("tr[data-session]")];
      const same = drawn.length === t.sessions.length && drawn.every((tr, i) => tr.dataset.session === t.sessions[i].session_id);
      const moreShown = el.sessions.querySelector('[data-key="more-sessions"]') !== null;
      if (same && moreShown === Boolean(t.sessionsCursor)) {
        drawn.forEach((tr, i) => {
          const s = t.sessions[i];
          const selected = s.session_id === t.selected;
          tr.className = selected ? "selected" : "";
          tr.querySelector("button").setAttribute("aria-pressed", selected ? "true" : "false");
          while (tr.children.length > 2) tr.lastChild.remove();
          append(tr, statusCells(s));
        });
        return;
      }
      const rows = t.sessions.map((s) => {
        const selected = s.session_id === t.selected;
        const cells = [
          h(
            "th",
            { scope: "row" },
            h(
              "button",
              {
                type: "button",
                class: "link",
                dataset: { key: `select-${s.session_id}` },
                "aria-pressed": selected ? "true" : "false",
                onclick: () => select(s.session_id),
              },
              s.session_id,
            ),
          ),
          h("td", null, s.backend_kind),
          statusCells(s),
        ];
        return h("tr", { class: selected ? "selected" : undefined, dataset: { session: s.session_id } }, cells);
      });
      fill(
        el.sessions,
        table("The org's sessions", ["Session", "Backend", "Connected", "Cooldown until", "Joins, last 24 h", "Next join"], rows, { key: "sessions" }),
        t.sessionsCursor
          ? h("button", { type: "button", dataset: { key: "more-sessions" }, onclick: () => loadSessions(t.sessionsCursor) }, "More sessions")
          : null,
        h("p", { class: "hint" }, "Choose a session to see its status, join jobs and pending joins."),
      );
    }

    function statusCells(s) {
      const status = t.statuses.get(s.session_id);
      if (status instanceof ApiError) return [h("td", { colSpan: 4, class: "error-cell" }, status.message)];
      if (!status) return [h("td", { colSpan: 4, class: "muted" }, "…")];
      return [
        h("td", null, connected(status.connected)),
        h("td", null, orNone(time(status.cooldown_until))),
        h("td", null, dayBar(s.session_id, status.protection)),
        h("td", null, nextJoin(status.protection)),
      ];
    }

    function retry() {
      return h("button", { type: "button", dataset: { key: "retry-sessions" }, onclick: () => loadSessions() }, "Try again");
    }

    const connected = (yes) => h("span", { class: yes ? "ok" : "warn" }, yes ? "connected" : "not connected");

    function dayBar(sid, p) {
      if (!p || typeof p.per_day !== "number") return h("span", { class: "muted" }, "no cap shown");
      return h(
        "span",
        { class: "meter" },
        h("progress", {
          max: p.per_day,
          value: Math.min(p.used_last_24h, p.per_day),
          "aria-label": `Joins in the last 24 hours of ${sid}, against the day cap`,
          dataset: { used: p.used_last_24h, cap: p.per_day },
        }),
        h("span", { class: "figure" }, `${p.used_last_24h} of ${p.per_day}`),
      );
    }

    function nextJoin(p) {
      if (!p) return h("span", { class: "muted" }, "unknown");
      return p.next_join_at ? time(p.next_join_at) : h("span", null, "now");
    }

    // The selected session: its status in full.
    function drawDetail() {
      if (!el.detail.isConnected) return;
      const sid = t.selected;
      if (!sid) {
        fill(el.detail, h("h2", { id: "session-title", tabIndex: -1 }, "Session"), empty("No session selected."));
        fill(el.jobs);
        fill(el.pending);
        return;
      }
      const status = t.statuses.get(sid);
      const head = h("h2", { id: "session-title", tabIndex: -1 }, `Session ${sid}`);
      const refresh = refreshButton("Refresh", "refresh-session", () => loadSelected(true, true));
      if (status instanceof ApiError) fill(el.detail, head, errorBox(status), refresh);
      else if (!status) fill(el.detail, head, h("p", { class: "loading" }, "Loading…"));
      else {
        const p = status.protection ?? {};
        const facts = [
          ["Connected", connected(status.connected)],
          ["Backend", status.backend_kind],
          ["Circuit", status.circuit],
          ["Queue depth", status.queue_depth],
          ["Cooldown until", orNone(time(status.cooldown_until))],
          ["Joins, last 24 h", dayBar(sid, status.protection)],
          ["Joins, last hour", p.per_hour !== undefined ? `${p.used_last_hour} of ${p.per_hour}` : "—"],
          ["Next join", nextJoin(status.protection)],
          ["Caps from", p.caps_source ?? "—"],
          ["Day cap halved until", orNone(time(p.halved_until))],
          ["Warming up until", orNone(time(p.rewarm_until))],
          ["Number's age", p.age_source === "declared" ? `${p.age_days} days` : "not declared"],
          ["Job window", p.window ? `${p.window.start}–${p.window.end} ${p.window.timezone}` : "any time"],
          ["WhatsApp rate limits, 7 days", p.strikes_7d ?? "—"],
          ["Join tokens left", status.tokens?.join ?? "—"],
        ];
        fill(
          el.detail,
          head,
          h("dl", { class: "facts two", dataset: { status: sid } }, facts.map(([k, v]) => [h("dt", null, k), h("dd", null, v)])),
          refresh,
        );
      }
      drawJobs();
      drawPending();
    }

    // Join jobs of the selected session.
    function loadJobs(sid, urgent = false) {
      return api("GET", `/v1/sessions/${enc(sid)}/join-jobs`, { urgent })
        .then((data) => {
          const e = entry(sid);
          const before = new Map((e.jobs ?? []).map((j) => [j.job_id, j.updated_at]));
          const unchanged = !e.jobsError && JSON.stringify(e.jobs) === JSON.stringify(data.jobs);
          Object.assign(e, { jobs: data.jobs, jobsError: null });
          e.at.jobs = Date.now();
          if (sid !== t.selected) return;
          if (!unchanged) drawJobs();
          // Items are read again only for an open job that changed.
          for (const job of e.jobs) {
            if (!t.open.has(job.job_id)) continue;
            const detail = t.details.get(job.job_id);
            if (!detail || detail instanceof ApiError || detail.updated_at !== job.updated_at || before.get(job.job_id) !== job.updated_at) {
              if (room() > 0) loadItems(sid, job.job_id);
            }
          }
        })
        .catch((error) => {
          if (error.code === "stale") return;
          entry(sid).jobsError = error;
          if (sid === t.selected) drawJobs();
        });
    }

    function loadItems(sid, jobId, urgent = false) {
      return api("GET", `/v1/sessions/${enc(sid)}/join-jobs/${enc(jobId)}`, { urgent })
        .then((job) => {
          if (sid !== t.selected) return;
          t.details.set(jobId, job);
          replaceJob(job);
        })
        .catch((error) => {
          if (error.code === "stale" || sid !== t.selected) return;
          t.details.set(jobId, error);
          drawJobs();
        });
    }

    function replaceJob(job) {
      const e = entry(job.session_id);
      if (e.jobs) {
        const { items, ...summary } = job;
        e.jobs = e.jobs.map((j) => (j.job_id === job.job_id ? summary : j));
      }
      if (job.items) t.details.set(job.job_id, job);
      drawJobs();
    }

    function act(job, action) {
      const sid = t.selected;
      t.actionError = null;
      api("POST", `/v1/sessions/${enc(sid)}/join-jobs/${enc(job.job_id)}/${action}`, { urgent: true })
        .then((answer) => {
          if (sid !== t.selected) return;
          replaceJob(answer);
          if (!answer.items && t.open.has(answer.job_id)) loadItems(sid, answer.job_id, true);
        })
        .catch((error) => {
          if (error.code === "stale" || sid !== t.selected) return;
          t.actionError = { job: job.job_id, error };
          drawJobs();
        });
    }

    function toggle(job) {
      if (t.open.has(job.job_id)) {
        t.open.delete(job.job_id);
        drawJobs();
        return;
      }
      t.open.add(job.job_id);
      drawJobs();
      if (!t.details.has(job.job_id) || t.details.get(job.job_id).updated_at !== job.updated_at) loadItems(t.selected, job.job_id, true);
    }

    function drawJobs() {
      if (!el.jobs.isConnected) return;
      const { jobs, jobsError } = cur();
      if (jobsError) return fill(el.jobs, errorBox(jobsError));
      if (!jobs) return fill(el.jobs, h("p", { class: "loading" }, "Loading…"));
      if (!jobs.length) {
        return fill(el.jobs, empty("No join jobs on this session in the last 7 days. Start one with POST /v1/sessions/{sid}/join-jobs."));
      }
      fill(el.jobs, h("ul", { class: "jobs" }, jobs.map(jobCard)));
    }

    function jobCard(job) {
      const c = job.counts;
      const finished = c.total - c.pending;
      const name = job.label ? `${job.label} (${job.job_id})` : job.job_id;
      const reason = job.pause_reason ?? job.wait_reason ?? job.cancel_reason;
      const open = t.open.has(job.job_id);
      const buttons = [];
      if (can("join") && !FINISHED.has(job.status)) {
        if (job.status === "paused") buttons.push(["resume", "Resume"]);
        else buttons.push(["pause", "Pause"]);
        buttons.push(["cancel", "Cancel"]);
      }
      const failure = t.actionError?.job === job.job_id ? errorBox(t.actionError.error) : null;
      const progressId = `progress-${job.job_id}`;
      return h(
        "li",
        { class: "job", dataset: { job: job.job_id, status: job.status } },
        h(
          "div",
          { class: "job-head" },
          h("h4", { id: `job-${job.job_id}` }, name),
          h("span", { class: `badge ${job.status}`, dataset: { field: "status" } }, reason ? `${job.status}: ${reason.replaceAll("_", " ")}` : job.status),
        ),
        h(
          "div",
          { class: "meter" },
          h("progress", {
            id: progressId,
            max: c.total,
            value: finished,
            "aria-labelledby": `job-${job.job_id}`,
            dataset: { finished, total: c.total },
          }),
          h("span", { class: "figure", dataset: { field: "progress" } }, `${finished} of ${c.total} finished`),
        ),
        h(
          "p",
          { class: "counts" },
          `joined ${c.joined} · pending approval ${c.pending_approval} · already member ${c.already_member} · failed ${c.failed} · cancelled ${c.cancelled} · waiting ${c.pending}`,
        ),
        h(
          "p",
          { class: "muted" },
          `Every ${job.interval_s} s or more · created `,
          time(job.created_at),
          job.next_attempt_at ? [" · next item ", time(job.next_attempt_at)] : null,
          job.estimated_completion_at ? [" · done about ", time(job.estimated_completion_at)] : null,
        ),
        h(
          "div",
          { class: "actions" },
          buttons.map(([action, label]) =>
            h(
              "button",
              {
                type: "button",
                class: action === "cancel" ? "danger" : undefined,
                // Pause and resume are one place: the focus stays on it when it turns.
                dataset: { key: `${action === "cancel" ? "cancel" : "run"}-${job.job_id}`, action },
                "aria-describedby": `job-${job.job_id}`,
                onclick: () => act(job, action),
              },
              label,
            ),
          ),
          h(
            "button",
            {
              type: "button",
              class: "quiet",
              dataset: { key: `items-${job.job_id}`, action: "items" },
              "aria-expanded": open ? "true" : "false",
              "aria-controls": `items-${job.job_id}`,
              onclick: () => toggle(job),
            },
            open ? "Hide items" : "Show items",
          ),
        ),
        failure,
        open ? h("div", { id: `items-${job.job_id}` }, items(job)) : null,
      );
    }

    function items(job) {
      const detail = t.details.get(job.job_id);
      if (detail instanceof ApiError) return errorBox(detail);
      if (!detail) return h("p", { class: "loading" }, "Loading the items…");
      if (!detail.items?.length) return empty("This job has no items.");
      return table(
        `Items of ${job.job_id}`,
        ["#", "Invite", "Outcome", "Group", "Error", "Attempts", "Finished"],
        detail.items.map((item) =>
          h(
            "tr",
            { dataset: { item: item.index } },
            h("td", null, item.index),
            h("td", null, h("code", null, item.invite)),
            h("td", null, h("span", { class: `badge ${item.status}` }, item.status.replaceAll("_", " "))),
            h("td", null, item.group_jid ? h("code", null, item.group_jid) : "—"),
            h("td", null, item.error ? `${item.error.code}: ${item.error.message}` : "—"),
            h("td", null, item.attempts),
            h("td", null, orNone(time(item.approved_at ?? item.finished_at), "—")),
          ),
        ),
      );
    }

    // Pending joins of the selected session.
    function loadPending(sid, urgent = false) {
      return api("GET", `/v1/sessions/${enc(sid)}/pending-joins`, { urgent })
        .then((data) => {
          const e = entry(sid);
          Object.assign(e, { pending: data.pending, pendingError: null });
          e.at.pending = Date.now();
          if (sid === t.selected) drawPending();
        })
        .catch((error) => {
          if (error.code === "stale") return;
          entry(sid).pendingError = error;
          if (sid === t.selected) drawPending();
        });
    }

    function drawPending() {
      if (!el.pending.isConnected) return;
      const refresh = refreshButton("Refresh pending joins", "refresh-pending", () => loadPending(t.selected, true));
      const { pending, pendingError } = cur();
      if (pendingError) return fill(el.pending, errorBox(pendingError), refresh);
      if (!pending) return fill(el.pending, h("p", { class: "loading" }, "Loading…"));
      if (!pending.length) return fill(el.pending, empty("No join request waits for approval, and none resolved in the last 7 days."), refresh);
      fill(
        el.pending,
        table(
          "Pending joins",
          ["Group", "State", "Requested", "Resolved", "From"],
          pending.map((p) =>
            h(
              "tr",
              null,
              h("td", null, h("code", null, p.group_jid)),
              h("td", null, h("span", { class: `badge ${p.state}` }, p.state)),
              h("td", null, time(p.requested_at)),
              h("td", null, orNone(time(p.resolved_at), "—")),
              h("td", null, p.job_id ? `job ${p.job_id}` : p.request_id ? `request ${p.request_id}` : "—"),
            ),
          ),
        ),
        refresh,
      );
    }

    // The org's group book.
    function loadBook(cursor, urgent = false) {
      return api("GET", `/v1/groups${query({ limit: PAGE, cursor })}`, { urgent })
        .then((data) => {
          t.bookError = null;
          t.book = cursor ? [...(t.book ?? []), ...data.groups] : data.groups;
          t.bookCursor = data.next_cursor;
          drawBook();
        })
        .catch((error) => {
          if (error.code === "stale") return;
          t.bookError = error;
          drawBook();
        });
    }

    function drawBook() {
      const refresh = refreshButton("Refresh the book", "refresh-book", () => loadBook(undefined, true));
      if (t.bookError) return fill(el.book, errorBox(t.bookError), refresh);
      if (!t.book) return fill(el.book, h("p", { class: "loading" }, "Loading…"));
      if (!t.book.length) return fill(el.book, empty("The book is empty: no session of this org has joined or asked to join a group through joingate yet."), refresh);
      fill(
        el.book,
        table(
          "The org's group book",
          ["Group", "Subject", "Sessions", "Invite kept", "Updated"],
          t.book.map((g) =>
            h(
              "tr",
              null,
              h("td", null, h("code", null, g.group_jid)),
              h("td", null, g.subject ?? h("span", { class: "muted" }, "unknown")),
              h("td", null, g.sessions.map((s) => h("div", null, `${s.session_id}: ${s.state} since `, time(s.since)))),
              h("td", null, g.invite_known ? "yes" : "no"),
              h("td", null, time(g.updated_at)),
            ),
          ),
        ),
        t.bookCursor ? h("button", { type: "button", dataset: { key: "more-book" }, onclick: () => loadBook(t.bookCursor, true) }, "More groups") : null,
        refresh,
      );
    }

    // Every 15 s while visible: the selected session's status and job list (and the items
    // of an open job that changed), when the budget has room for both and two clicks.
    function poll() {
      const sid = t.selected;
      // Two for the poll, two kept for clicks.
      if (!sid || room() < 4) return;
      loadStatus(sid);
      loadJobs(sid);
    }
  }

  // ---- admin view --------------------------------------------------------------------

  const CAPABILITIES = ["join", "read", "manage"];

  function adminView() {
    const a = {
      tokens: null,
      tokensCursor: undefined,
      tokensOrg: "",
      tokensError: null,
      sessions: null,
      sessionsCursor: undefined,
      sessionsOrg: "",
      sessionsError: null,
      minted: null,
      mintError: null,
      confirming: null,
      revokeError: null,
      org: null,
      webhook: undefined,
      webhookError: null,
      deliveries: null,
      deliveriesError: null,
      redeliverError: null,
      orgs: new Set(),
    };
    const el = { tokens: h("div"), mint: h("div"), minted: h("div"), sessions: h("div"), webhook: h("div"), orgs: h("datalist", { id: "known-orgs" }) };

    $("who-text").textContent = "Admin token";
    fill(
      $("view"),
      el.orgs,
      panel("tokens", "API tokens", el.minted, el.mint, el.tokens),
      panel("admin-sessions", "Sessions", el.sessions),
      panel("webhook", "An org's webhook", el.webhook),
    );
    drawMint();
    drawWebhook();
    let opened = false;
    loadTokens().then(() => {
      // The admin token was accepted (a wrong one answers 401 or 404 here).
      if (a.tokensError && [401, 403, 404, 429].includes(a.tokensError.status) && !opened) return refused(a.tokensError);
      opened = true;
      loadAdminSessions();
      stopPolling = every(ADMIN_POLL_MS, () => {
        if (a.org && a.webhook && room() >= 1) loadDeliveries();
      });
    });

    function learnOrgs(list) {
      for (const item of list) if (item.org) a.orgs.add(item.org);
      fill(el.orgs, [...a.orgs].sort().map((org) => h("option", { value: org })));
    }

    function filterForm(key, label, value, onsubmit) {
      const input = h("input", { id: `${key}-org`, name: "org", value, list: "known-orgs", pattern: "[A-Za-z0-9_\\-]{1,64}", spellcheck: false });
      return h(
        "form",
        {
          class: "inline",
          onsubmit: (event) => {
            event.preventDefault();
            onsubmit(input.value.trim());
          },
        },
        h("label", { for: `${key}-org` }, label),
        input,
        h("button", { type: "submit", dataset: { key: `${key}-filter` } }, "Show"),
      );
    }

    /**
     * Loads a page of an admin list into `a[what]` (appended after the first page), with its
     * cursor and error beside it (`a[what + "Cursor"]`, `a[what + "Error"]`), filtered by
     * `a[what + "Org"]`; then draws it. `what` is also the answer's array.
     */
    function loadPage(what, path, draw, cursor, urgent) {
      return api("GET", `${path}${query({ org: a[`${what}Org`], limit: PAGE, cursor })}`, { urgent })
        .then((data) => {
          a[`${what}Error`] = null;
          a[what] = cursor ? [...(a[what] ?? []), ...data[what]] : data[what];
          a[`${what}Cursor`] = data.next_cursor;
          learnOrgs(data[what]);
          draw();
        })
        .catch((error) => {
          if (error.code === "stale") return;
          a[`${what}Error`] = error;
          draw();
        });
    }

    // Tokens.
    function loadTokens(cursor, urgent = false) {
      return loadPage("tokens", "/v1/admin/tokens", drawTokens, cursor, urgent);
    }

    function drawTokens() {
      const filter = filterForm("tokens", "Org (empty: every org)", a.tokensOrg, (org) => {
        a.tokensOrg = org;
        a.tokens = null;
        drawTokens();
        loadTokens(undefined, true);
      });
      if (a.tokensError) return fill(el.tokens, h("h3", null, "Tokens"), filter, errorBox(a.tokensError));
      if (!a.tokens) return fill(el.tokens, h("h3", null, "Tokens"), filter, h("p", { class: "loading" }, "Loading…"));
      const list = a.tokens.length
        ? table(
            "API tokens",
            ["Token id", "Org", "Capabilities", "Sessions", "Label", "Created", "Expires", "State", actionsHead()],
            a.tokens.map(tokenRow),
            { key: "tokens" },
          )
        : empty(a.tokensOrg ? `Org ${a.tokensOrg} has no token.` : "No token has been minted yet.");
      fill(
        el.tokens,
        h("h3", null, "Tokens"),
        filter,
        list,
        a.revokeError ? errorBox(a.revokeError) : null,
        a.tokensCursor ? h("button", { type: "button", dataset: { key: "more-tokens" }, onclick: () => loadTokens(a.tokensCursor, true) }, "More tokens") : null,
      );
    }

    function tokenRow(tk) {
      let action = null;
      if (!tk.revoked && a.confirming === tk.token_id) {
        action = h(
          "span",
          { class: "confirm", role: "group", "aria-label": `Revoke ${tk.token_id}?` },
          h("button", { type: "button", class: "danger", dataset: { key: `revoke-yes-${tk.token_id}`, action: "revoke-confirm" }, onclick: () => revoke(tk.token_id) }, "Yes, revoke"),
          h(
            "button",
            {
              type: "button",
              class: "quiet",
              dataset: { key: `revoke-no-${tk.token_id}` },
              onclick: () => {
                a.confirming = null;
                drawTokens();
                focusKey(el.tokens, `revoke-${tk.token_id}`);
              },
            },
            "Keep",
          ),
        );
      } else if (!tk.revoked) {
        action = h(
          "button",
          {
            type: "button",
            class: "danger",
            dataset: { key: `revoke-${tk.token_id}`, action: "revoke" },
            "aria-label": `Revoke ${tk.token_id}`,
            onclick: () => {
              a.confirming = tk.token_id;
              drawTokens();
              focusKey(el.tokens, `revoke-yes-${tk.token_id}`);
            },
          },
          "Revoke",
        );
      }
      return h(
        "tr",
        { dataset: { token: tk.token_id, revoked: String(tk.revoked) } },
        h("th", { scope: "row" }, h("code", null, tk.token_id)),
        h("td", null, tk.org),
        h("td", null, tk.capabilities.join(", ")),
        h("td", null, tk.sessions ? tk.sessions.join(", ") : h("span", { class: "muted" }, "all")),
        h("td", null, tk.label ?? ""),
        h("td", null, time(tk.created_at)),
        h("td", null, orNone(time(tk.expires_at), "never")),
        h("td", null, h("span", { class: `badge ${tk.revoked ? "revoked" : "active"}`, dataset: { field: "state" } }, tk.revoked ? "revoked" : "active")),
        h("td", null, action),
      );
    }

    function focusKey(container, key) {
      const target = [...container.querySelectorAll("[data-key]")].find((node) => node.dataset.key === key);
      target?.focus();
    }

    function revoke(tokenId) {
      a.revokeError = null;
      api("DELETE", `/v1/admin/tokens/${enc(tokenId)}`, { urgent: true })
        .then(() => {
          a.confirming = null;
          // The list is read again: its row shows what the API now says.
          return loadTokens(undefined, true);
        })
        .then(() => focusKey(el.tokens, "tokens-filter"))
        .catch((error) => {
          if (error.code === "stale") return;
          a.revokeError = error;
          drawTokens();
        });
    }

    function drawMint() {
      const org = h("input", { id: "mint-org", name: "org", required: true, list: "known-orgs", pattern: "[A-Za-z0-9_\\-]{1,64}", spellcheck: false });
      const caps = CAPABILITIES.map((cap) => h("input", { type: "checkbox", id: `mint-cap-${cap}`, name: "capabilities", value: cap, checked: cap === "read" }));
      const sessions = h("input", { id: "mint-sessions", name: "sessions", spellcheck: false, "aria-describedby": "mint-sessions-hint" });
      const expires = h("input", { id: "mint-expires", name: "expires", type: "datetime-local", "aria-describedby": "mint-expires-hint" });
      const label = h("input", { id: "mint-label", name: "label", maxLength: 200 });
      const form = h(
        "form",
        {
          id: "mint-form",
          class: "mint",
          onsubmit: (event) => {
            event.preventDefault();
            const body = { org: org.value.trim(), capabilities: caps.filter((c) => c.checked).map((c) => c.value) };
            const list = sessions.value.split(/[\s,]+/).filter(Boolean);
            if (list.length) body.sessions = list;
            if (expires.value) body.expires_at = new Date(expires.value).toISOString();
            if (label.value.trim()) body.label = label.value.trim();
            mint(body);
          },
        },
        h("h3", null, "Mint a token"),
        h("div", { class: "field" }, h("label", { for: "mint-org" }, "Org"), org),
        h(
          "fieldset",
          null,
          h("legend", null, "Capabilities"),
          CAPABILITIES.map((cap, i) => h("span", { class: "check" }, caps[i], h("label", { for: `mint-cap-${cap}` }, cap))),
        ),
        h(
          "div",
          { class: "field" },
          h("label", { for: "mint-sessions" }, "Sessions (optional)"),
          sessions,
          h("span", { id: "mint-sessions-hint", class: "hint" }, "Session ids separated by commas; empty: every session of the org."),
        ),
        h(
          "div",
          { class: "field" },
          h("label", { for: "mint-expires" }, "Expires (optional)"),
          expires,
          h("span", { id: "mint-expires-hint", class: "hint" }, "Your local time; empty: never."),
        ),
        h("div", { class: "field" }, h("label", { for: "mint-label" }, "Label (optional)"), label),
        h("button", { type: "submit", dataset: { key: "mint" } }, "Mint token"),
      );
      fill(el.mint, form, a.mintError ? errorBox(a.mintError) : null);
    }

    function mint(body) {
      a.mintError = null;
      api("POST", "/v1/admin/tokens", { body, urgent: true })
        .then((answer) => {
          a.minted = answer;
          drawMinted();
          drawMint();
          $("minted-title")?.focus();
          return loadTokens(undefined, true);
        })
        .catch((error) => {
          if (error.code === "stale") return;
          a.mintError = error;
          const form = el.mint.querySelector("form");
          fill(el.mint, form, errorBox(error));
        });
    }

    function drawMinted() {
      const m = a.minted;
      if (!m) return fill(el.minted);
      const secret = h("input", { id: "minted-token", readOnly: true, value: m.token, spellcheck: false, "aria-describedby": "minted-hint" });
      const copied = h("span", { class: "hint", role: "status" });
      fill(
        el.minted,
        h(
          "div",
          { class: "minted", id: "minted" },
          h("h3", { id: "minted-title", tabIndex: -1 }, `New token ${m.token_id} for org ${m.org}`),
          h("p", { id: "minted-hint" }, "Copy it now: it is shown only this once. joingate keeps only its hash, and this page forgets it when you press Done."),
          h(
            "div",
            { class: "row" },
            h("label", { for: "minted-token", class: "sr-only" }, "The new token"),
            secret,
            h(
              "button",
              {
                type: "button",
                onclick: async () => {
                  secret.select();
                  try {
                    await navigator.clipboard.writeText(m.token);
                    copied.textContent = "Copied.";
                  } catch {
                    copied.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
                  }
                },
              },
              "Copy",
            ),
            h(
              "button",
              {
                type: "button",
                class: "quiet",
                dataset: { key: "minted-done" },
                onclick: () => {
                  a.minted = null;
                  drawMinted();
                  $("mint-org")?.focus();
                },
              },
              "Done",
            ),
          ),
          copied,
          h("p", { class: "muted" }, `Capabilities ${m.capabilities.join(", ")}`, m.sessions ? ` · sessions ${m.sessions.join(", ")}` : "", m.expires_at ? [" · expires ", time(m.expires_at)] : ""),
        ),
      );
    }

    // Sessions (admin views).
    function loadAdminSessions(cursor, urgent = false) {
      return loadPage("sessions", "/v1/admin/sessions", drawAdminSessions, cursor, urgent);
    }

    function drawAdminSessions() {
      const filter = filterForm("sessions", "Org (empty: every org)", a.sessionsOrg, (org) => {
        a.sessionsOrg = org;
        a.sessions = null;
        drawAdminSessions();
        loadAdminSessions(undefined, true);
      });
      if (a.sessionsError) return fill(el.sessions, filter, errorBox(a.sessionsError));
      if (!a.sessions) return fill(el.sessions, filter, h("p", { class: "loading" }, "Loading…"));
      if (!a.sessions.length) return fill(el.sessions, filter, empty(a.sessionsOrg ? `Org ${a.sessionsOrg} has no session.` : "No session is registered yet."));
      fill(
        el.sessions,
        filter,
        table(
          "Registered sessions",
          ["Session", "Org", "Backend", "Server events", "Join limit", "Protection"],
          a.sessions.map((s) =>
            h(
              "tr",
              { dataset: { session: s.session_id } },
              h("th", { scope: "row" }, s.session_id),
              h("td", null, s.org),
              h("td", null, s.backend ? [s.backend.kind, " ", h("code", null, s.backend.url), s.backend.remote_session ? ` (${s.backend.remote_session})` : ""] : "native (SESSION_BACKEND_URL)"),
              h("td", null, s.events ? "on" : "off"),
              h("td", null, joinLimit(s.limits?.join)),
              h("td", null, protection(s.protection)),
            ),
          ),
          { key: "admin-sessions" },
        ),
        a.sessionsCursor ? h("button", { type: "button", dataset: { key: "more-admin-sessions" }, onclick: () => loadAdminSessions(a.sessionsCursor, true) }, "More sessions") : null,
      );
    }

    function joinLimit(join) {
      if (!join) return "—";
      const parts = [`${join.per_minute}/min, burst ${join.burst}`];
      if (join.per_hour !== undefined) parts.push(`${join.per_hour}/hour`);
      if (join.per_day !== undefined) parts.push(`${join.per_day}/day`);
      return parts.join(" · ");
    }

    function protection(p) {
      if (!p || !Object.keys(p).length) return h("span", { class: "muted" }, "defaults");
      return Object.entries(p)
        .map(([k, v]) => `${k.replaceAll("_", " ")}: ${v && typeof v === "object" ? Object.values(v).join("–") : v ?? "off"}`)
        .join(" · ");
    }

    // An org's webhook, asked only once an org is picked; 404 is "no webhook".
    function pickOrg(org) {
      a.org = org;
      a.webhook = undefined;
      a.webhookError = null;
      a.deliveries = null;
      a.deliveriesError = null;
      a.redeliverError = null;
      drawWebhook();
      if (!org) return;
      api("GET", `/v1/admin/orgs/${enc(org)}/webhook`, { urgent: true })
        .then((hook) => {
          if (org !== a.org) return;
          a.webhook = hook;
          drawWebhook();
          loadDeliveries(true);
        })
        .catch((error) => {
          if (error.code === "stale" || org !== a.org) return;
          if (error.status === 404) a.webhook = null;
          else a.webhookError = error;
          drawWebhook();
        });
    }

    function loadDeliveries(urgent = false) {
      const org = a.org;
      return api("GET", `/v1/admin/orgs/${enc(org)}/webhook/deliveries`, { urgent })
        .then((data) => {
          if (org !== a.org) return;
          a.deliveriesError = null;
          a.deliveries = data.deliveries;
          drawWebhook();
        })
        .catch((error) => {
          if (error.code === "stale" || org !== a.org) return;
          if (error.status === 404) {
            a.webhook = null;
            a.deliveries = null;
          } else a.deliveriesError = error;
          drawWebhook();
        });
    }

    function redeliver(id) {
      const org = a.org;
      a.redeliverError = null;
      api("POST", `/v1/admin/orgs/${enc(org)}/webhook/deliveries/${enc(id)}/redeliver`, { urgent: true })
        .then(() => loadDeliveries(true))
        .catch((error) => {
          if (error.code === "stale" || org !== a.org) return;
          a.redeliverError = error;
          drawWebhook();
        });
    }

    function drawWebhook() {
      const input = h("input", { id: "webhook-org", name: "org", required: true, value: a.org ?? "", list: "known-orgs", pattern: "[A-Za-z0-9_\\-]{1,64}", spellcheck: false });
      const form = h(
        "form",
        {
          class: "inline",
          onsubmit: (event) => {
            event.preventDefault();
            pickOrg(input.value.trim());
          },
        },
        h("label", { for: "webhook-org" }, "Org"),
        input,
        h("button", { type: "submit", dataset: { key: "webhook-show" } }, "Show webhook"),
      );
      const body = [];
      if (!a.org) body.push(empty("Pick an org to see its webhook and deliveries."));
      else if (a.webhookError) body.push(errorBox(a.webhookError));
      else if (a.webhook === undefined) body.push(h("p", { class: "loading" }, "Loading…"));
      else if (a.webhook === null) body.push(empty(`Org ${a.org} has no webhook. Register one with PUT /v1/admin/orgs/${a.org}/webhook.`));
      else {
        body.push(
          h(
            "dl",
            { class: "facts", dataset: { webhook: a.webhook.org } },
            h("dt", null, "URL"),
            h("dd", null, h("code", null, a.webhook.url)),
            h("dt", null, "Events"),
            h("dd", null, a.webhook.events.join(", ")),
          ),
          h("h3", null, "Deliveries"),
        );
        if (a.redeliverError) body.push(errorBox(a.redeliverError));
        if (a.deliveriesError) body.push(errorBox(a.deliveriesError));
        else if (!a.deliveries) body.push(h("p", { class: "loading" }, "Loading…"));
        else if (!a.deliveries.length) body.push(empty("No delivery yet: events are sent as the org's sessions join, leave and finish jobs."));
        else {
          body.push(
            table(
              `Deliveries of org ${a.org}`,
              ["Delivery", "Event", "State", "Attempts", "Last status", "Last error", "Created", "Updated", actionsHead()],
              a.deliveries.map((d) =>
                h(
                  "tr",
                  { dataset: { delivery: d.delivery_id, state: d.state } },
                  h("th", { scope: "row" }, h("code", null, d.delivery_id)),
                  h("td", null, d.event_type),
                  h("td", null, h("span", { class: `badge ${d.state}` }, d.state)),
                  h("td", null, d.attempts),
                  h("td", null, d.last_status ?? "—"),
                  h("td", null, d.last_error ?? "—"),
                  h("td", null, time(d.created_at)),
                  h("td", null, time(d.updated_at)),
                  h(
                    "td",
                    null,
                    h(
                      "button",
                      { type: "button", dataset: { key: `redeliver-${d.delivery_id}`, action: "redeliver" }, "aria-label": `Redeliver ${d.delivery_id}`, onclick: () => redeliver(d.delivery_id) },
                      "Redeliver",
                    ),
                  ),
                ),
              ),
              { key: "deliveries" },
            ),
          );
        }
        body.push(refreshButton("Refresh deliveries", "refresh-deliveries", () => loadDeliveries(true)));
      }
      fill(el.webhook, form, body);
    }
  }

  // ---- start -------------------------------------------------------------------------

  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token-input").value.trim();
    $("token-input").value = "";
    if (value) signIn(value);
  });
  $("forget").addEventListener("click", forget);
  const kept = sessionStorage.getItem(TOKEN_KEY);
  if (kept) signIn(kept);
  else $("token-input").focus();
})();
