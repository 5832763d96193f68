// Knowledge base: the files, the size limit shown before upload, several files at once, upload under
// another name, a warning before replacing an existing file.  All of the page's state is `state`.

import * as api from "./api.js";
import { confirmDialog } from "./dialog.js";
import { $, labelCells, announce, el } from "./dom.js";
import { codeText, size, when } from "./i18n.js";
import { go, path } from "./router.js";

export const state = { files: [], maxBytes: null };

async function loadList() {
  const kb = await api.kbList();
  state.files = kb.files;
  state.maxBytes = kb.max_bytes;
  $("#kb-limit").textContent = `Не больше ${size(kb.max_bytes)} на файл; Markdown (.md), текст (.txt) или JSON, в кодировке UTF-8.`;
  $("#kb-table tbody").replaceChildren(...kb.files.map((f) => el("tr", { "data-name": f.name },
    el("td", {}, el("a", { href: path("kb", f.name), "data-route": true, text: f.name })),
    el("td", { text: size(f.size) }), el("td", { text: when(f.mtime) }),
    el("td", {}, el("button", { type: "button", class: "link danger", "data-delete": f.name, "aria-label": `Удалить ${f.name}`, text: "удалить",
      onclick: () => remove(f.name) })))));
  if (!kb.files.length) $("#kb-table tbody").append(el("tr", {}, el("td", { colspan: 4, class: "muted", text: "файлов нет" })));
  labelCells($("#kb-table"));
}

async function view(name) {
  const text = await api.kbRead(name);
  const box = $("#kb-view");
  const heading = el("h3", { tabindex: "-1", text: name });
  box.replaceChildren(heading, el("pre", { class: "doc", tabindex: "0", text }));
  box.hidden = false;
  heading.focus();
}

async function remove(name) {
  if (!(await confirmDialog({ title: `Удалить «${name}» из базы знаний?`, body: el("p", { text: "Бот перестанет использовать этот файл сразу." }),
    confirmText: "Удалить", danger: true }))) return;
  await api.kbDelete(name);
  announce($("#kb-message"), `Удалено: ${name}`, "ok");
  if (location.pathname === path("kb", name)) go(path("kb"), { replace: true });
  else await loadList();
}

async function upload(ev) {
  ev.preventDefault();
  const files = [...$("#kb-file").files];
  const out = $("#kb-message");
  if (!files.length) { announce(out, "Выберите один или несколько файлов.", "warn"); $("#kb-file").focus(); return; }
  const rename = $("#kb-name").value.trim();
  if (rename && files.length > 1) { announce(out, "Другое имя можно задать только для одного файла.", "error"); $("#kb-name").focus(); return; }
  const tooBig = files.filter((f) => state.maxBytes !== null && f.size > state.maxBytes);
  if (tooBig.length) {
    announce(out, `Слишком большие (предел ${size(state.maxBytes)}): ${tooBig.map((f) => `${f.name} — ${size(f.size)}`).join(", ")}. Ничего не загружено.`, "error");
    return;
  }
  const targets = files.map((f) => ({ file: f, name: rename || f.name }));
  const existing = targets.filter((t) => state.files.some((f) => f.name === t.name)).map((t) => t.name);
  if (existing.length && !(await confirmDialog({ id: "kb-overwrite", title: "Заменить существующие файлы?",
    body: el("div", {}, el("p", { text: "В базе знаний уже есть файлы с такими именами; их содержимое будет заменено:" }),
      el("ul", { id: "kb-overwrite-names" }, ...existing.map((n) => el("li", { text: n })))),
    confirmText: "Заменить", danger: true }))) {
    announce(out, "Загрузка отменена.", "");
    return;
  }
  const progress = $("#kb-progress");
  progress.hidden = false;
  const done = [];
  const failed = [];
  for (const [i, t] of targets.entries()) {
    try {
      const r = await api.kbUpload(t.file, rename || null, (part) => { progress.value = (100 * (i + part)) / targets.length; });
      done.push(`${r.file.name} (${size(r.file.size)}${r.created ? "" : ", заменён"})`);
    } catch (e) {
      if (e.isAuth) throw e;
      failed.push(`${t.name}: ${codeText(e.code, e.status)}`);
    }
  }
  progress.value = 100;
  announce(out, [done.length ? el("div", { text: `Загружено: ${done.join(", ")}` }) : "",
    failed.length ? el("div", { class: "error", text: `Не загружено — ${failed.join("; ")}` }) : ""], failed.length ? "error" : "ok");
  $("#kb-file").value = "";
  $("#kb-name").value = "";
  await loadList();
}

export async function show(parts) {
  await loadList();
  $("#kb-view").hidden = true;
  if (parts[0]) await view(parts[0]);
}

export function install() {
  $("#kb-upload").addEventListener("submit", (ev) => upload(ev).catch((e) => announce($("#kb-message"), codeText(e.code, e.status), "error")));
  $("#kb-file").addEventListener("change", () => { $("#kb-name").disabled = $("#kb-file").files.length > 1; });
}
