// Metrotech admin panel: plain JavaScript, no build step.  Every request carries the operator's token.
"use strict";

const KNOWN = ["system_prompt", "greeting", "fillers", "fallback", "goodbye"];
const LABELS = {
  system_prompt: "Системный промпт",
  greeting: "Приветствие",
  fillers: "Фразы-заполнители (по одной в строке)",
  fallback: "Если не расслышал (fallback)",
  goodbye: "Прощание",
};
const WAIT_MS = 5000;

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
};
const short = (sha) => (sha ? sha.slice(0, 12) : "—");
const when = (t) => (t ? new Date(t * 1000).toLocaleString("ru-RU") : "—");
const kib = (n) => (n < 1024 ? `${n} Б` : `${(n / 1024).toFixed(1)} КиБ`);

// ---- auth and requests -------------------------------------------------------------------------

let token = localStorage.getItem("adminToken") || "";

class ApiError extends Error {
  constructor(status, body, headers) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.headers = headers;
  }
}

async function api(method, path, { json, body, headers = {} } = {}) {
  const h = { Authorization: `Bearer ${token}`, ...headers };
  if (json !== undefined) {
    h["Content-Type"] = "application/json; charset=utf-8";
    body = JSON.stringify(json, null, 2);
  }
  const r = await fetch(path, { method, headers: h, body, cache: "no-store" });
  if (r.status === 401 || r.status === 403) {
    showLogin(r.status === 403 ? "Неверный токен." : "");
    throw new ApiError(r.status, await r.json().catch(() => null), r.headers);
  }
  if (!r.ok && r.status !== 304) {
    throw new ApiError(r.status, await r.json().catch(() => null), r.headers);
  }
  return r;
}

function showLogin(message) {
  $("#login").hidden = false;
  $("#login-error").hidden = !message;
  $("#login-error").textContent = message || "";
  $("#login-token").focus();
}

async function login(ev) {
  ev.preventDefault();
  token = $("#login-token").value.trim();
  try {
    await api("GET", "/api/status");
  } catch (e) {
    return;
  }
  localStorage.setItem("adminToken", token);
  $("#login").hidden = true;
  $("#login-token").value = "";
  await start();
}

// ---- tabs --------------------------------------------------------------------------------------

const loaders = {};
function showTab(name) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== `tab-${name}`;
  if (loaders[name]) loaders[name]().catch(report);
}

function report(e) {
  if (e instanceof ApiError && (e.status === 401 || e.status === 403)) return;
  console.error(e);
  alert(e.message || String(e));
}

// ---- prompts editor ----------------------------------------------------------------------------

const editor = { etag: null, sha: null, doc: null };

function fieldBox(key, value, removable) {
  const id = `field-${key}`;
  const long = key === "system_prompt";
  const text = Array.isArray(value) ? value.join("\n") : value ?? "";
  const area = el("textarea", { id, name: key, rows: long ? 12 : key === "fillers" ? 4 : 3, "data-key": key });
  area.value = text;
  const label = el("label", { for: id, text: LABELS[key] || key });
  const head = el("div", { class: "field-head" }, label);
  if (removable) {
    head.append(el("button", { type: "button", class: "link danger", "data-remove": key, text: "удалить",
      onclick: () => { box.remove(); } }));
  }
  const box = el("div", { class: "field", "data-field": key }, head, area, el("div", { class: "field-error", hidden: "" }));
  return box;
}

function renderEditor(doc) {
  const fields = $("#fields");
  fields.replaceChildren();
  for (const key of KNOWN) fields.append(fieldBox(key, doc[key], false));
  for (const [key, value] of Object.entries(doc)) {
    if (!KNOWN.includes(key)) fields.append(fieldBox(key, value, true));
  }
}

function editorDirty() {
  return editor.doc !== null && JSON.stringify(collectDraft()) !== JSON.stringify(normalizeDoc(editor.doc));
}

function normalizeDoc(doc) {
  const out = {};
  for (const key of KNOWN) out[key] = key === "fillers" ? doc.fillers || [] : doc[key] ?? null;
  for (const [k, v] of Object.entries(doc)) if (!KNOWN.includes(k)) out[k] = v;
  return out;
}

function collectDraft() {
  const doc = {};
  for (const area of document.querySelectorAll("#fields textarea")) {
    const key = area.dataset.key;
    if (key === "fillers") doc.fillers = area.value.split("\n").map((s) => s.trim()).filter((s) => s);
    else if ((key === "fallback" || key === "goodbye") && area.value === "") doc[key] = null;
    else doc[key] = area.value;
  }
  return doc;
}

function clearErrors() {
  for (const e of document.querySelectorAll(".field-error")) { e.hidden = true; e.textContent = ""; }
  for (const f of document.querySelectorAll(".field")) f.classList.remove("invalid");
  $("#form-errors").hidden = true;
}

function showErrors(errors) {
  const general = [];
  for (const err of errors) {
    const key = err.path.split(/[.[]/)[0];
    const box = document.querySelector(`.field[data-field="${CSS.escape(key)}"]`);
    const where = err.line ? ` (строка ${err.line}, столбец ${err.col})` : "";
    if (box && key !== "$") {
      box.classList.add("invalid");
      const out = box.querySelector(".field-error");
      out.hidden = false;
      out.textContent += `${err.path}: ${err.message}${where} `;
    } else {
      general.push(`${err.path}: ${err.message}${where}`);
    }
  }
  if (general.length) { $("#form-errors").hidden = false; $("#form-errors").textContent = general.join("; "); }
}

async function loadPrompts() {
  let r;
  try {
    r = await api("GET", "/api/prompts");
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 404) throw e;
    r = null;  // no prompts file yet: an empty editor creates it
  }
  editor.doc = r ? await r.json() : {};
  editor.etag = r ? r.headers.get("ETag") : null;
  editor.sha = editor.etag ? editor.etag.replaceAll('"', "") : null;
  renderEditor(editor.doc);
  clearErrors();
  $("#conflict-banner").hidden = true;
  $("#conflict-diff-view").hidden = true;
  const invalid = r !== null && r.headers.get("X-Prompts-Valid") === "false";
  $("#invalid-banner").hidden = !invalid && r !== null;
  if (invalid) {
    $("#invalid-banner").textContent =
      "Файл на диске повреждён (правка вручную?). Показана последняя корректная версия; сохранение заменит файл.";
  } else if (r === null) {
    $("#invalid-banner").textContent = "Файла промптов ещё нет: заполните поля и сохраните, чтобы создать его.";
  }
  await refreshBadges();
}

function badge(c, target) {
  let state = "stale";
  let text = "stale";
  if (c.last_error && !c.in_sync) { state = "error"; text = "error"; }
  else if (c.sha256 === target) { state = "in-sync"; text = "in sync"; }
  const detail = c.sha256 === target
    ? (c.latency_ms != null ? `применил за ${c.latency_ms.toFixed(1)} мс` : `загружено ${when(c.loaded_at)}`)
    : `на версии ${short(c.sha256)}${c.last_error ? ` — ошибка: ${c.last_error}` : ""}`;
  return el("li", { class: `badge ${state}`, "data-service": c.service, "data-pid": String(c.pid), "data-state": state },
    el("b", { text: `${c.service}` }), ` (pid ${c.pid}) `, el("span", { class: "state", text }), el("br"),
    el("small", { text: `${detail} · ${c.mode}` }));
}

async function refreshBadges(result) {
  const s = await (await api("GET", "/api/status")).json();
  $("#disk-sha").textContent = short(s.sha256);
  const list = $("#consumer-badges");
  list.replaceChildren();
  const byPid = new Map((result ? result.consumers : []).map((c) => [c.pid, c]));
  for (const c of s.consumers) {
    const saved = byPid.get(c.pid);
    list.append(badge(saved && saved.sha256 === c.sha256 ? { ...c, latency_ms: saved.latency_ms } : c, s.sha256));
  }
  if (!s.consumers.length) list.append(el("li", { class: "muted", text: "нет работающих процессов" }));
  return s;
}

async function savePrompts(ev) {
  ev.preventDefault();
  clearErrors();
  const draft = collectDraft();
  const message = encodeURIComponent($("#save-message").value);
  $("#save").disabled = true;
  $("#save-result").hidden = false;
  $("#save-result").className = "banner";
  $("#save-result").textContent = "Сохранение… ждём, пока процессы применят новую версию.";
  try {
    const r = await api("PUT", `/api/prompts?wait_ms=${WAIT_MS}&message=${message}`, {
      json: draft,
      headers: editor.etag ? { "If-Match": editor.etag } : {},
    });
    const result = await r.json();
    editor.etag = r.headers.get("ETag");
    editor.sha = result.sha256;
    editor.doc = draft;
    $("#save-message").value = "";
    const lines = result.consumers.map((c) =>
      c.in_sync
        ? `применено: ${c.service} (pid ${c.pid}) за ${(c.latency_ms ?? 0).toFixed(1)} мс`
        : `НЕ применено: ${c.service} (pid ${c.pid}) всё ещё на ${short(c.sha256)}${c.last_error ? ` — ${c.last_error}` : ""}`);
    $("#save-result").className = `banner ${result.all_applied ? "ok" : "warn"}`;
    $("#save-result").replaceChildren(
      el("div", { text: `Сохранено, версия ${short(result.sha256)}.` }),
      ...lines.map((t) => el("div", { class: "consumer-line", text: t })));
    await refreshBadges(result);
  } catch (e) {
    $("#save-result").hidden = true;
    if (!(e instanceof ApiError)) throw e;
    if (e.status === 422) showErrors(e.body.errors || []);
    else if (e.status === 412) {
      editor.currentSha = e.body.current_sha256;
      $("#conflict-banner").hidden = false;
    } else if (e.status === 413) { $("#form-errors").hidden = false; $("#form-errors").textContent = e.message; }
    else if (e.status !== 401 && e.status !== 403) throw e;
  } finally {
    $("#save").disabled = false;
  }
}

async function showConflictDiff() {
  const view = $("#conflict-diff-view");
  try {
    const d = await (await api("GET", `/api/prompts/diff?from=${editor.sha}`)).json();
    view.textContent = d.changes.map((c) => `${c.kind === "changed" ? "изменён" : c.kind === "added" ? "добавлен" : "удалён"}: ${c.key}`).join("\n")
      + "\n\n" + d.unified;
  } catch (e) {
    view.textContent = `Не удалось построить разницу: ${e.message}`;
  }
  view.hidden = false;
}

function addKey() {
  const key = $("#new-key").value.trim();
  if (!key) return;
  if (document.querySelector(`.field[data-field="${CSS.escape(key)}"]`)) { alert(`Промпт «${key}» уже есть`); return; }
  $("#fields").append(fieldBox(key, "", true));
  $("#new-key").value = "";
  document.getElementById(`field-${key}`).focus();
}

// ---- history -----------------------------------------------------------------------------------

const ORIGINS = { api: "панель", patch: "панель (ключ)", rollback: "откат", file: "файл" };

async function loadHistory() {
  const h = await (await api("GET", "/api/prompts/history?limit=200")).json();
  const status = await (await api("GET", "/api/status")).json();
  const body = $("#history-table tbody");
  body.replaceChildren();
  h.items.forEach((rev, i) => {
    const prev = h.items[i + 1];
    const current = rev.sha256 === status.sha256;
    const actions = el("td", {},
      prev ? el("button", { class: "secondary", "data-diff": rev.sha256, text: "Изменения",
        onclick: () => showDiff(prev.sha256, rev.sha256) }) : "",
      current ? el("span", { class: "tag", text: "текущая" })
        : el("button", { "data-rollback": rev.sha256, text: "Откатить", onclick: () => rollback(rev.sha256) }));
    body.append(el("tr", { "data-sha": rev.sha256 },
      el("td", { text: when(rev.created_at) }), el("td", { text: rev.author }),
      el("td", { text: ORIGINS[rev.origin] || rev.origin }), el("td", { text: rev.message }),
      el("td", { text: kib(rev.size) }), el("td", {}, el("code", { text: short(rev.sha256) })), actions));
  });
}

async function showDiff(from, to) {
  const d = await (await api("GET", `/api/prompts/diff?from=${from}&to=${to}`)).json();
  $("#history-diff").hidden = false;
  $("#history-diff-title").textContent = `${short(from)} → ${short(to)}`;
  $("#history-diff-keys").replaceChildren(...d.changes.map((c) =>
    el("li", { class: c.kind, text: `${c.key}: ${c.kind === "changed" ? "изменён" : c.kind === "added" ? "добавлен" : "удалён"}` })));
  $("#history-diff-text").textContent = d.unified || "(без изменений)";
}

async function rollback(sha) {
  const out = $("#history-message");
  const status = await (await api("GET", "/api/status")).json();
  try {
    const r = await api("POST", `/api/prompts/rollback/${sha}?wait_ms=${WAIT_MS}`, {
      headers: status.sha256 ? { "If-Match": `"${status.sha256}"` } : {},
    });
    const result = await r.json();
    const applied = result.consumers.filter((c) => c.in_sync).length;
    out.className = `banner ${result.all_applied ? "ok" : "warn"}`;
    out.textContent = `Откат к ${short(sha)} выполнен (новая версия ${short(result.sha256)}); `
      + `применили ${applied} из ${result.consumers.length} процессов.`;
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 412) throw e;
    out.className = "banner error";
    out.textContent = "Промпты только что изменились; история обновлена, повторите откат.";
  }
  out.hidden = false;
  await loadHistory();
  if (!editorDirty()) await loadPrompts();
}

// ---- knowledge base ----------------------------------------------------------------------------

async function loadKb() {
  const kb = await (await api("GET", "/api/kb")).json();
  const body = $("#kb-table tbody");
  body.replaceChildren(...kb.files.map((f) => el("tr", { "data-name": f.name },
    el("td", {}, el("a", { href: "#", text: f.name, onclick: (ev) => { ev.preventDefault(); viewKb(f.name); } })),
    el("td", { text: kib(f.size) }), el("td", { text: when(f.mtime) }),
    el("td", {}, el("button", { class: "link danger", "data-delete": f.name, text: "удалить", onclick: () => deleteKb(f.name) })))));
}

async function viewKb(name) {
  const r = await api("GET", `/api/kb/${encodeURIComponent(name)}`);
  $("#kb-view").hidden = false;
  $("#kb-view").textContent = await r.text();
}

async function deleteKb(name) {
  if (!confirm(`Удалить «${name}» из базы знаний?`)) return;
  await api("DELETE", `/api/kb/${encodeURIComponent(name)}`);
  $("#kb-view").hidden = true;
  await loadKb();
}

function uploadKb(ev) {
  ev.preventDefault();
  const file = $("#kb-file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file, file.name);
  const xhr = new XMLHttpRequest();
  const progress = $("#kb-progress");
  progress.hidden = false;
  progress.value = 0;
  $("#kb-message").textContent = "";
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) progress.value = (100 * e.loaded) / e.total; };
  xhr.onload = async () => {
    progress.value = 100;
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
    if (xhr.status === 200 || xhr.status === 201) {
      $("#kb-message").textContent = `Загружено: ${body.name} (${kib(body.size)})`;
      $("#kb-file").value = "";
      await loadKb();
    } else if (xhr.status === 401 || xhr.status === 403) {
      showLogin("Неверный токен.");
    } else {
      $("#kb-message").textContent = `Ошибка: ${body.detail || xhr.status}`;
    }
  };
  xhr.onerror = () => { $("#kb-message").textContent = "Ошибка сети"; };
  xhr.open("POST", "/api/kb");
  xhr.setRequestHeader("Authorization", `Bearer ${token}`);
  xhr.send(form);
}

// ---- calls -------------------------------------------------------------------------------------

const calls = { offset: 0, limit: 50, total: 0 };

async function loadCalls() {
  const q = new URLSearchParams({ limit: calls.limit, offset: calls.offset });
  if ($("#calls-caller").value) q.set("caller", $("#calls-caller").value);
  if ($("#calls-since").value) q.set("since", $("#calls-since").value);
  if ($("#calls-until").value) q.set("until", $("#calls-until").value);
  const data = await (await api("GET", `/api/calls?${q}`)).json();
  calls.total = data.total;
  const body = $("#calls-table tbody");
  body.replaceChildren(...data.items.map((c) => el("tr", { class: "clickable", "data-call": c.id, onclick: () => showCall(c.id) },
    el("td", { text: when(c.started_at) }), el("td", { text: `${c.caller_number} ${c.caller_name}` }),
    el("td", { text: c.duration != null ? `${Math.round(c.duration)} с` : "идёт" }), el("td", { text: c.turn_count }),
    el("td", { text: c.end_reason || "" }), el("td", {}, el("code", { text: short(c.prompts_sha256) })))));
  if (!data.items.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "muted", text: "звонков нет" })));
  const to = Math.min(calls.offset + calls.limit, calls.total);
  $("#calls-page").textContent = calls.total ? `${calls.offset + 1}–${to} из ${calls.total}` : "";
}

async function showCall(id) {
  const c = await (await api("GET", `/api/calls/${encodeURIComponent(id)}`)).json();
  const ms = (v) => (v != null ? `${Math.round(v)} мс` : "—");
  const box = $("#call-detail");
  box.hidden = false;
  box.replaceChildren(
    el("h3", { text: `Звонок ${c.id}: ${c.caller_number} ${c.caller_name}` }),
    el("p", { class: "muted", text: `${when(c.started_at)} · завершение: ${c.end_reason || "—"} · промпты ${short(c.prompts_sha256)}` }),
    ...c.turns.map((t) => el("div", { class: "turn" },
      el("div", { class: "caller", text: `Абонент: ${t.caller_text}` }),
      el("div", { class: "bot", text: `Бот: ${t.bot_text}` }),
      el("small", { class: "muted", text: `STT ${ms(t.stt_ms)} · LLM ${ms(t.llm_ms)} · TTS ${ms(t.tts_ms)}${t.error ? ` · ошибка: ${t.error}` : ""}` }))));
}

// ---- status ------------------------------------------------------------------------------------

async function loadStatus() {
  const s = await (await api("GET", "/api/status")).json();
  const rows = s.consumers.map((c) => el("tr", { "data-pid": String(c.pid) },
    el("td", { text: c.service }), el("td", { text: c.pid }), el("td", {}, el("code", { text: short(c.sha256) })),
    el("td", { text: when(c.loaded_at) }), el("td", { text: c.in_sync ? "да" : "нет" }), el("td", { text: c.mode }),
    el("td", { text: c.last_error || "" })));
  $("#status-view").replaceChildren(
    el("p", {}, "Файл: ", el("code", { text: s.path })),
    el("p", {}, "Версия на диске: ", el("code", { text: s.sha256 || "нет файла" }), s.valid ? "" : el("b", { class: "error", text: ` НЕКОРРЕКТНЫЙ: ${s.error}` })),
    el("p", { text: `Панель следит за файлом: ${s.watching}. В синхронизации: ${s.in_sync}, отстают: ${s.out_of_sync}.` }),
    el("table", {}, el("thead", {}, el("tr", {}, ...["Сервис", "PID", "sha256", "Загружено", "Актуально", "Режим", "Последняя ошибка"].map((t) => el("th", { text: t })))),
      el("tbody", {}, ...rows)));
}

// ---- playground --------------------------------------------------------------------------------

async function ask(ev) {
  ev.preventDefault();
  const out = $("#playground-result");
  out.textContent = "…";
  try {
    const r = await api("POST", "/api/playground", { json: { prompts: collectDraft(), text: $("#playground-text").value } });
    const a = await r.json();
    out.replaceChildren(
      el("div", { class: "bot answer", text: a.text }),
      el("p", { class: "muted", text: `источник: ${a.source} · модель: ${a.backend} · ${a.llm_ms.toFixed(1)} мс${a.error ? ` · ошибка: ${a.error}` : ""}` }),
      ...a.passages.map((p) => el("blockquote", { text: `[${p.doc}] ${p.text}` })));
  } catch (e) {
    if (e instanceof ApiError && e.status === 422) {
      out.textContent = "Черновик промптов некорректен: " + (e.body.errors || []).map((x) => `${x.path}: ${x.message}`).join("; ");
    } else {
      out.textContent = `Ошибка: ${e.message}`;
    }
  }
}

// ---- start -------------------------------------------------------------------------------------

Object.assign(loaders, { prompts: refreshBadges, history: loadHistory, kb: loadKb, calls: loadCalls, status: loadStatus });

let badgeTimer = null;
async function start() {
  await loadPrompts();
  if (!badgeTimer) {
    badgeTimer = setInterval(() => {
      if (!$("#tab-prompts").hidden && $("#login").hidden) refreshBadges().catch(() => {});
    }, 2000);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", () => { localStorage.removeItem("adminToken"); token = ""; showLogin(""); });
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("#prompts-form").addEventListener("submit", (ev) => savePrompts(ev).catch(report));
  $("#reload-prompts").addEventListener("click", () => loadPrompts().catch(report));
  $("#conflict-reload").addEventListener("click", () => loadPrompts().catch(report));
  $("#conflict-diff").addEventListener("click", () => showConflictDiff().catch(report));
  $("#add-key").addEventListener("click", addKey);
  $("#kb-upload").addEventListener("submit", uploadKb);
  $("#calls-filter").addEventListener("submit", (ev) => { ev.preventDefault(); calls.offset = 0; loadCalls().catch(report); });
  $("#calls-prev").addEventListener("click", () => { calls.offset = Math.max(0, calls.offset - calls.limit); loadCalls().catch(report); });
  $("#calls-next").addEventListener("click", () => {
    if (calls.offset + calls.limit < calls.total) { calls.offset += calls.limit; loadCalls().catch(report); }
  });
  $("#playground-form").addEventListener("submit", ask);
  if (!token) showLogin("");
  else start().catch(report);
});
