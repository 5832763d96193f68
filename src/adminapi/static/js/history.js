// History: every revision, the diff between any two, a revision's content, loading one into the editor as
// a draft, and a rollback confirmed with the diff it will apply.  All of the page's state is `state`.

import * as api from "./api.js";
import { confirmDialog } from "./dialog.js";
import { $, labelCells, announce, el, short } from "./dom.js";
import { renderServerUnified } from "./diff.js";
import { CHANGE_KINDS, ORIGINS, codeText, size, when } from "./i18n.js";
import * as editor from "./editor.js";
import { go, path } from "./router.js";
import { live } from "./live.js";

export const state = { label: undefined, items: [], diskSha: null };

const rowLink = (text, href, attrs = {}) => el("a", { href, "data-route": true, class: "button-link", text, ...attrs });

async function loadList() {
  const [h, s] = await Promise.all([api.history(state.label), api.status()]);
  state.items = h.items;
  state.diskSha = s.sha256;
  const body = $("#history-table tbody");
  // "Текущая" is the newest revision with the content on disk: exactly one row.
  const current = h.items.find((r) => r.sha256 === s.sha256);
  const severalHosts = s.distributing !== null && s.distributing !== undefined;  // Redis: say where each edit was made
  body.replaceChildren(...h.items.map((rev, i) => {
    const prev = h.items[i + 1];
    const isCurrent = rev === current;
    const label = `${when(rev.created_at)}, ${short(rev.sha256)}`;
    return el("tr", { "data-sha": rev.sha256, "data-id": String(rev.id), class: isCurrent ? "current" : "" },
      el("td", {}, el("input", { type: "radio", name: "from", value: rev.sha256, "aria-label": `Сравнить от: ${label}`, checked: i === 1 })),
      el("td", {}, el("input", { type: "radio", name: "to", value: rev.sha256, "aria-label": `Сравнить до: ${label}`, checked: i === 0 })),
      el("td", { text: when(rev.created_at) }),
      el("td", { text: severalHosts && rev.host ? `${rev.author} (хост ${rev.host})` : rev.author }),
      el("td", { text: ORIGINS[rev.origin] || rev.origin }),
      el("td", { text: rev.message }),
      el("td", { text: size(rev.size) }),
      el("td", {}, el("code", { text: short(rev.sha256) }), isCurrent ? el("span", { class: "tag", text: " Текущая" }) : ""),
      el("td", { class: "actions" },
        rowLink("Открыть", path("history", rev.sha256), { "data-view": rev.sha256 }),
        prev ? rowLink("Изменения", path("history", "diff", prev.sha256, rev.sha256), { "data-diff": rev.sha256 }) : "",
        isCurrent ? "" : el("button", { type: "button", class: "secondary danger", "data-rollback": rev.sha256, text: "Откатить…",
          onclick: () => rollback(rev) })));
  }));
  labelCells($("#history-table"));
}

function detail(title, ...children) {
  const box = $("#history-detail");
  const heading = el("h3", { id: "history-detail-title", tabindex: "-1", text: title });
  box.replaceChildren(heading, ...children);
  box.hidden = false;
  heading.focus();
}

async function showRevision(sha) {
  const doc = await api.revision(sha, state.label);
  const rev = state.items.find((r) => r.sha256.startsWith(sha));
  const what = `версия ${short(sha)}${rev ? ` от ${when(rev.created_at)}` : ""}`;
  detail(`Содержимое: ${what}`,
    el("pre", { class: "doc", id: "history-view-text", tabindex: "0", text: JSON.stringify(doc, null, 2) }),
    el("button", { type: "button", id: "history-load-draft", text: "Загрузить в редактор как черновик",
      onclick: async () => { if (await editor.loadAsDraft(doc, what)) go(path("prompts")); } }));
}

async function showDiff(from, to) {
  const d = await api.diff(from, to, state.label);
  detail(`Изменения: ${short(from)} → ${short(to)}`,
    el("ul", { class: "changes", id: "history-diff-keys" }, ...d.changes.map((c) => el("li", { class: c.kind, text: `${c.key}: ${CHANGE_KINDS[c.kind]}` }))),
    renderServerUnified(d.unified, "history-diff-text"));
}

async function rollback(rev) {
  const etag = state.diskSha ? `"${state.diskSha}"` : null;
  const d = state.diskSha ? await api.diff(state.diskSha, rev.sha256, state.label) : { changes: [], unified: "" };
  const ok = await confirmDialog({
    id: "rollback",
    title: `Откатить промпты к версии ${short(rev.sha256)}?`,
    body: el("div", {},
      el("p", { text: `Будет записана новая версия с содержимым от ${when(rev.created_at)}; процессы применят её сразу. Изменения относительно текущей:` }),
      el("ul", { class: "changes", id: "rollback-keys" }, ...d.changes.map((c) => el("li", { class: c.kind, text: `${c.key}: ${CHANGE_KINDS[c.kind]}` }))),
      renderServerUnified(d.unified, "rollback-diff")),
    confirmText: "Откатить",
    danger: true,
  });
  const out = $("#history-message");
  if (!ok) return;
  try {
    const result = await api.rollback(rev.sha256, etag, state.label);
    const applied = result.consumers.filter((c) => c.in_sync).length;
    announce(out, `Откат к ${short(rev.sha256)} выполнен (новая версия ${short(result.sha256)}); применили ${applied} из ${result.consumers.length} процессов.`,
      result.all_applied ? "ok" : "warn");
  } catch (e) {
    if (!(e instanceof api.ApiError) || e.isAuth) throw e;
    announce(out, e.status === 412 ? "Промпты только что изменились; история обновлена, повторите откат." : `Откат не выполнен: ${codeText(e.code, e.status)}`, "error");
  }
  await loadList();
}

export async function show(parts) {
  await loadList();
  $("#history-detail").hidden = true;
  if (parts[0] === "diff" && parts[1] && parts[2]) await showDiff(parts[1], parts[2]);
  else if (parts[0]) await showRevision(parts[0]);
}

export function install() {
  $("#history-compare").addEventListener("click", () => {
    const from = $('#history-table input[name="from"]:checked');
    const to = $('#history-table input[name="to"]:checked');
    if (from && to) go(path("history", "diff", from.value, to.value));
  });
}

/** Refresh the list when a new version appears while the page is shown. */
export function onPrompts() {
  if (!$("#tab-history").hidden && live.prompts) loadList().catch(() => {});
}
