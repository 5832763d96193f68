// The prompts editor: form and raw JSON views of one draft, deliberate saving (review step, sticky save
// bar, errors at their fields), drafts kept in the browser, merges on conflicts, live updates from disk.
// All of its state is `state`; `state.label` is the prompts label it edits (undefined: the live file).

import * as api from "./api.js";
import { confirmDialog } from "./dialog.js";
import { $, announce, el, short } from "./dom.js";
import { canonical, equalDocs, renderDiff } from "./diff.js";
import { addField, clearErrors, collectForm, drawGutter, markFieldErrors, renderForm, showRawError } from "./fields.js";
import { dropDraft, loadDraft, loadSettings, storeDraft, storeSettings } from "./drafts.js";
import { clock, codeText, fileErrorText, ms, originText, when } from "./i18n.js";
import { live } from "./live.js";
import { renderMerge, threeWay } from "./merge.js";

export const state = {
  label: undefined,
  operator: "",
  base: null, // the live document the draft started from
  etag: null,
  sha: null,
  view: "form",
  saving: false,
  deferred: null, // a live event that arrived during a save
  pending: null, // a newer version on disk while the draft has changes
  latencies: new Map(),
  settings: { skipReview: false },
};

// ---- the draft in the form and raw views ----------------------------------------------------------

/** {doc} or, in the raw view with text that is not JSON, {error, raw}. */
export function draft() {
  if (state.view === "raw") {
    const raw = $("#raw-text").value;
    try {
      const doc = JSON.parse(raw);
      if (!doc || typeof doc !== "object" || Array.isArray(doc)) return { error: "not_object", raw };
      return { doc, raw };
    } catch (_) {
      return { error: "json_syntax", raw };
    }
  }
  return { doc: collectForm() };
}

export function isDirty() {
  if (state.base === null) return false;
  const d = draft();
  return d.error ? true : !equalDocs(d.doc, state.base);
}

function setDraftDoc(doc) {
  renderForm(doc, edited);
  $("#raw-text").value = JSON.stringify(canonical(doc), null, 2);
  drawGutter();
}

function switchView(view) {
  if (view === state.view) return;
  if (view === "form") {
    const d = draft();
    if (d.error) {
      showRawError([{ kind: d.error, path: "$" }], "Исправьте JSON, чтобы перейти к форме.");
      return;
    }
    renderForm(d.doc, edited);
  } else {
    $("#raw-text").value = JSON.stringify(collectForm(), null, 2);
    drawGutter();
  }
  state.view = view;
  $("#form-view").hidden = view !== "form";
  $("#raw-view").hidden = view !== "raw";
  $("#view-form").setAttribute("aria-pressed", String(view === "form"));
  $("#view-raw").setAttribute("aria-pressed", String(view === "raw"));
}

// ---- errors and results at the save bar ---------------------------------------------------------

function status(text, kind = "") {
  announce($("#save-status"), text, kind);
}

function showFieldErrors(items) {
  if (state.view === "raw") { showRawError(items); return; }
  const general = markFieldErrors(items);
  if (general.length) status(`Не сохранено: ${general.join("; ")}`, "error");
}

function consumerLines(result) {
  return result.consumers.map((c) => el("div", { class: "consumer-line", text: c.in_sync
    ? `применено: ${c.service} (pid ${c.pid}) за ${ms(c.latency_ms ?? 0)}`
    : `НЕ применено: ${c.service} (pid ${c.pid}) всё ещё на версии ${short(c.sha256)}${c.last_error ? " — ошибка загрузки" : ""}` }));
}

// ---- loading, saving ------------------------------------------------------------------------------

/** Load the live document into the editor (the draft is replaced: callers ask first when it is dirty). */
export async function load() {
  const got = await api.getPrompts(state.label);
  state.base = canonical(got.doc);
  state.etag = got.etag;
  state.sha = got.sha;
  state.pending = null;
  setDraftDoc(state.base);
  clearErrors();
  $("#merge-view").hidden = true;
  $("#live-banner").hidden = true;
  showInvalid(got.valid ? null : "на диске");
}

function showInvalid(error) {
  const banner = $("#invalid-banner");
  banner.hidden = !error;
  if (error) {
    banner.replaceChildren(
      el("b", { text: "Файл промптов на диске повреждён. " }),
      "Процессы продолжают работать на последней корректной версии; в редакторе — она же. Сохранение заменит повреждённый файл.",
      typeof error === "string" && error !== "на диске" ? el("div", { class: "detail", id: "invalid-detail", text: fileErrorText(error) }) : "");
  }
}

async function review(d) {
  if (state.settings.skipReview) return true;
  return confirmDialog({
    id: "review",
    title: "Проверьте изменения перед публикацией",
    body: el("div", {}, el("p", { text: "Слева — то, что сейчас работает; после публикации процессы перейдут на новую версию." }),
      renderDiff(state.base, d.doc, { id: "review" })),
    confirmText: "Опубликовать",
    cancelText: "Вернуться к правке",
  });
}

/** Save, the deliberate way: only from the Save button or Ctrl+S / Ctrl+Enter, after the review. */
export async function requestSave() {
  if (state.saving || state.base === null) return;
  clearErrors();
  const d = draft();
  if (!d.error && !isDirty()) {
    status("Нет изменений: сохранять нечего.", "");
    return;
  }
  if (!d.error && !(await review(d))) {
    status("Сохранение отменено: черновик остался в редакторе.", "");
    return;
  }
  state.saving = true;
  $("#save").disabled = true;
  status("Сохранение… ждём, пока процессы применят новую версию.");
  try {
    const body = state.view === "raw" ? d.raw : d.doc;
    const { result, etag } = await api.savePrompts({ body, etag: state.etag, message: $("#save-message").value, label: state.label });
    state.base = canonical(d.doc);
    state.etag = etag;
    state.sha = result.sha256;
    state.pending = null;
    $("#live-banner").hidden = true;
    $("#live-note").hidden = true;
    for (const c of result.consumers) if (c.in_sync && c.latency_ms != null) state.latencies.set(`${c.pid}:${c.sha256}`, c.latency_ms);
    $("#save-message").value = "";
    dropDraft(state.operator, state.label);
    showInvalid(null);
    status([el("div", { text: `Сохранено, версия ${short(result.sha256)}.` }), ...consumerLines(result)], result.all_applied ? "ok" : "warn");
  } catch (e) {
    if (!(e instanceof api.ApiError)) throw e;
    if (e.status === 422) {
      status(`Не сохранено: ${codeText(e.code, e.status)}`, "error");
      showFieldErrors(e.errors);
    } else if (e.status === 412) {
      status("Не сохранено: промпты изменились, пока вы их редактировали. Объедините изменения ниже.", "error");
      await openMerge(d.doc);
    } else if (e.isNetwork) {
      status("Нет связи с панелью: изменения не сохранены (черновик сохранён в этом браузере).", "error");
      persistDraft();
    } else if (!e.isAuth) {
      status(`Не сохранено: ${codeText(e.code, e.status)}`, "error");
    }
  } finally {
    state.saving = false;
    $("#save").disabled = false;
    const ev = state.deferred;
    state.deferred = null;
    if (ev) onPrompts(ev);
  }
}

// ---- merging -------------------------------------------------------------------------------------

function whoChanged(sha) {
  const p = live.prompts;
  return p && p.sha256 === sha && p.origin ? originText(p.origin, p.author) : "изменено после того, как вы начали правку";
}

/** Fetch what is on disk and merge it with `mine` (relative to `base`, default: the editor's base). */
async function openMerge(mine, base = state.base) {
  const theirs = await api.getPrompts(state.label);
  if (!mine) {
    status("Черновик JSON некорректен: исправьте его, чтобы объединить с версией на диске.", "error");
    return;
  }
  const merge = threeWay(base, theirs.doc, mine);
  renderMerge($("#merge-view"), merge, {
    who: whoChanged(theirs.sha),
    onApply: (doc) => {
      state.base = canonical(theirs.doc);
      state.etag = theirs.etag;
      state.sha = theirs.sha;
      state.pending = null;
      if (state.view === "raw") switchView("form");
      setDraftDoc(doc);
      $("#merge-view").hidden = true;
      $("#live-banner").hidden = true;
      persistDraft();
      status(isDirty() ? "Изменения объединены с версией на диске: проверьте и сохраните." : "Ваш черновик совпал с версией на диске.", "ok");
      $("#save").focus();
    },
    onTakeTheirs: async () => {
      if (await confirmDialog({ title: "Отбросить ваши изменения?", body: el("p", { text: "Черновик будет заменён версией с диска." }),
        confirmText: "Отбросить и загрузить", danger: true })) {
        await load();
        dropDraft(state.operator, state.label);
        status("Загружена версия с диска.", "");
      }
    },
    onCancel: () => { $("#merge-view").hidden = true; $("#save").focus(); },
  });
}

// ---- live updates --------------------------------------------------------------------------------

/** A `prompts` event: a new version on disk (and who made it), or a broken/repaired file. */
export async function onPrompts(ev) {
  if (state.base === null) return;
  if (!ev.valid) { showInvalid(ev.error || "на диске"); return; }
  showInvalid(null);
  if (state.saving) { state.deferred = ev; return; }
  if (ev.sha256 === state.sha) {
    state.pending = null;
    $("#live-banner").hidden = true;
    return;
  }
  const who = originText(ev.origin, ev.author);
  if (!isDirty() && $("#merge-view").hidden) {
    await load();
    announce($("#live-note"), `Обновлено в ${clock()}: ${who}.`, "info");
    return;
  }
  state.pending = ev;
  const banner = $("#live-banner");
  banner.replaceChildren(
    el("span", { text: `На диске новая версия ${short(ev.sha256)} (${who}). У вас несохранённые изменения. ` }),
    el("button", { type: "button", id: "live-merge", text: "Сравнить и объединить", onclick: () => openMerge(draft().doc) }));
  banner.hidden = false;
}

// ---- drafts kept in the browser -------------------------------------------------------------------

let persistTimer = null;
function persistDraft() {
  if (!state.operator || state.base === null) return;
  const d = draft();
  if (!isDirty()) { dropDraft(state.operator, state.label); return; }
  const kept = storeDraft(state.operator, state.label, { base_sha: state.sha, doc: d.doc || null, raw: state.view === "raw" ? d.raw : null, view: state.view });
  if (!kept) status("Браузер не даёт сохранить черновик (хранилище заполнено или отключено): не закрывайте страницу до сохранения.", "warn");
}

function edited() {
  $("#live-note").hidden = true;
  clearTimeout(persistTimer);
  persistTimer = setTimeout(persistDraft, 250);
}

function offerDraft() {
  const stored = loadDraft(state.operator, state.label);
  const banner = $("#draft-banner");
  if (!stored || (stored.doc && !stored.raw && equalDocs(stored.doc, state.base))) { banner.hidden = true; return; }
  const older = stored.base_sha !== state.sha;
  banner.replaceChildren(
    el("span", { text: `Найден несохранённый черновик от ${when(stored.saved_at)}${older ? " (с тех пор промпты на диске изменились)" : ""}. ` }),
    el("button", { type: "button", id: "draft-restore", text: "Восстановить", onclick: () => restoreDraft(stored) }),
    el("button", { type: "button", id: "draft-drop", class: "secondary", text: "Удалить черновик",
      onclick: () => { dropDraft(state.operator, state.label); banner.hidden = true; } }));
  banner.hidden = false;
}

async function restoreDraft(stored) {
  $("#draft-banner").hidden = true;
  if (stored.base_sha === state.sha || !stored.doc) {
    if (stored.raw !== null && stored.raw !== undefined) {
      switchView("raw");
      $("#raw-text").value = stored.raw;
      drawGutter();
    } else {
      setDraftDoc(stored.doc);
    }
    status("Черновик восстановлен.", "ok");
    return;
  }
  let base = {};
  try { base = await api.revision(stored.base_sha, state.label); } catch (_) { /* not in the history: every key is compared */ }
  await openMerge(stored.doc, base);
}

/** Put a document (e.g. a revision from the history) into the editor as a draft; asks first if dirty. */
export async function loadAsDraft(doc, what) {
  if (isDirty() && !(await confirmDialog({ title: "Заменить черновик?", body: el("p", { text: "В редакторе есть несохранённые изменения; они будут заменены." }),
    confirmText: "Заменить", danger: true }))) return false;
  if (state.view === "raw") switchView("form");
  setDraftDoc(doc);
  persistDraft();
  status(`В редакторе черновик: ${what}. Он ещё не сохранён.`, "warn");
  return true;
}

/** Ask before something that would lose the draft (logout, discard). */
export async function confirmLoss(title) {
  if (!isDirty()) return true;
  return confirmDialog({ title, body: el("p", { text: "В редакторе есть несохранённые изменения." }), confirmText: "Продолжить без сохранения", danger: true });
}

// ---- set-up --------------------------------------------------------------------------------------

export async function start(operator) {
  state.operator = operator;
  state.settings = loadSettings(operator);
  $("#skip-review").checked = state.settings.skipReview;
  await load();
  offerDraft();
}

export function install() {
  $("#save").addEventListener("click", () => requestSave());
  $("#discard").addEventListener("click", async () => {
    if (!(await confirmLoss("Отменить изменения?"))) return;
    await load();
    dropDraft(state.operator, state.label);
    status("Изменения отменены: в редакторе версия с диска.", "");
  });
  $("#skip-review").addEventListener("change", (e) => {
    state.settings.skipReview = e.target.checked;
    storeSettings(state.operator, state.settings);
  });
  $("#view-form").addEventListener("click", () => switchView("form"));
  $("#view-raw").addEventListener("click", () => switchView("raw"));
  $("#tab-prompts").addEventListener("input", (e) => { if (e.target.closest("#fields, #raw-view")) edited(); });
  $("#raw-text").addEventListener("input", () => drawGutter());
  $("#raw-text").addEventListener("scroll", () => { $("#raw-gutter").scrollTop = $("#raw-text").scrollTop; });
  const addKey = () => {
    const input = $("#new-key");
    const key = input.value.trim();
    if (!key) return;
    if ($(`.field[data-field="${CSS.escape(key)}"]`)) { status(`Промпт «${key}» уже есть.`, "warn"); return; }
    addField(key, edited);
    input.value = "";
    $(`#field-${CSS.escape(key)}`).focus();
    edited();
  };
  $("#add-key").addEventListener("click", addKey);
  // Enter in a one-line field never publishes: in the new-key field it adds the key, elsewhere nothing.
  $("#tab-prompts").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && e.target.matches("input") && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      if (e.target.id === "new-key") addKey();
    }
  });
  document.addEventListener("keydown", (e) => {
    const shortcut = (e.ctrlKey || e.metaKey) && (e.key === "s" || e.key === "S" || e.key === "Enter");
    if (!shortcut || $("#tab-prompts").hidden || document.querySelector("dialog[open]")) return;
    e.preventDefault();
    requestSave();
  });
  addEventListener("beforeunload", (e) => {
    if (isDirty()) { persistDraft(); e.preventDefault(); e.returnValue = ""; }
  });
}
