// Playground: a multi-turn conversation answered twice — with the editor's draft and with the published
// prompts — side by side.  Nothing is saved.  State: `state`.

import * as api from "./api.js";
import { $, el } from "./dom.js";
import { codeText, itemText, ms } from "./i18n.js";
import * as editor from "./editor.js";

export const state = { turns: [], history: { draft: [], published: [] } };

function answerBox(side, a, err) {
  if (err) return el("div", { class: "answer error", "data-side": side, text: err });
  return el("div", { class: "answer", "data-side": side },
    el("div", { class: "bot", text: a.text }),
    el("small", { class: "muted", text: `источник: ${a.source} · модель: ${a.backend} · ${ms(a.llm_ms)}${a.error ? " · ошибка модели" : ""}` }),
    ...a.passages.map((p) => el("blockquote", { text: `[${p.doc}] ${p.text}` })));
}

async function ask(side, prompts, text) {
  try {
    const a = await api.playground(prompts, text, state.history[side]);
    state.history[side].push({ role: "user", text }, { role: "assistant", text: a.text });
    return answerBox(side, a, null);
  } catch (e) {
    if (e.isAuth) throw e;
    const why = e.status === 422 ? `Промпты некорректны: ${e.errors.map(itemText).join("; ")}` : codeText(e.code, e.status);
    return answerBox(side, null, why);
  }
}

async function send(ev) {
  ev.preventDefault();
  const input = $("#playground-text");
  const text = input.value.trim();
  if (!text) return;
  const d = editor.draft();
  const published = editor.state.base || {};
  $("#playground-send").disabled = true;
  const row = el("li", { class: "pg-turn" }, el("div", { class: "caller", text: `Абонент: ${text}` }), el("p", { class: "muted", text: "…" }));
  $("#playground-log").append(row);
  try {
    const [draftAnswer, publishedAnswer] = await Promise.all([
      d.error ? answerBox("draft", null, "Черновик JSON некорректен: исправьте его в редакторе.") : ask("draft", d.doc, text),
      ask("published", published, text),
    ]);
    row.replaceChildren(row.firstChild, el("div", { class: "pg-pair" },
      el("div", { class: "pg-col" }, el("div", { class: "pg-col-title", text: "Черновик" }), draftAnswer),
      el("div", { class: "pg-col" }, el("div", { class: "pg-col-title", text: "Опубликовано" }), publishedAnswer)));
    input.value = "";
  } finally {
    $("#playground-send").disabled = false;
    input.focus();
  }
}

export function show() {}

export function install() {
  $("#playground-form").addEventListener("submit", (ev) => send(ev));
  $("#playground-reset").addEventListener("click", () => {
    state.history = { draft: [], published: [] };
    $("#playground-log").replaceChildren();
    $("#playground-text").focus();
  });
}
