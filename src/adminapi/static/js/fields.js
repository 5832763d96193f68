// The editor's two views of the draft as DOM: one field per prompt (form) and the whole document as text
// (raw), with errors marked where they are (aria-invalid, the line and column of a JSON syntax error).

import { $, $$, el } from "./dom.js";
import { KNOWN, canonical } from "./diff.js";
import { FIELD_LABELS, itemText } from "./i18n.js";

function fieldBox(key, value, removable, onRemove) {
  const id = `field-${key}`;
  const errId = `err-${key}`;
  const area = el("textarea", { id, name: key, rows: key === "system_prompt" ? 10 : key === "fillers" ? 4 : 3,
    "data-key": key, "aria-describedby": errId });
  area.value = Array.isArray(value) ? value.join("\n") : value ?? "";
  const head = el("div", { class: "field-head" }, el("label", { for: id, text: FIELD_LABELS[key] || key }));
  const box = el("div", { class: "field", "data-field": key }, head, area, el("p", { class: "field-error", id: errId, hidden: true }));
  if (removable) {
    head.append(el("button", { type: "button", class: "link danger", "data-remove": key, "aria-label": `Удалить промпт ${key}`,
      text: "удалить", onclick: () => { box.remove(); onRemove(); } }));
  }
  return box;
}

export function renderForm(doc, onRemove) {
  const fields = $("#fields");
  fields.replaceChildren();
  for (const key of KNOWN) fields.append(fieldBox(key, doc[key], false, onRemove));
  for (const [key, value] of Object.entries(doc)) if (!KNOWN.includes(key)) fields.append(fieldBox(key, value, true, onRemove));
}

export function collectForm() {
  const doc = {};
  for (const area of $$("#fields textarea")) {
    const key = area.dataset.key;
    if (key === "fillers") doc.fillers = area.value.split("\n").map((s) => s.trim()).filter(Boolean);
    else if ((key === "fallback" || key === "goodbye") && area.value === "") continue;
    else doc[key] = area.value;
  }
  return canonical(doc);
}


/** A new, empty custom prompt at the end of the form. */
export function addField(key, onRemove) {
  $("#fields").append(fieldBox(key, "", true, onRemove));
}

export function drawGutter(errorLine = 0) {
  const lines = $("#raw-text").value.split("\n").length;
  const gutter = $("#raw-gutter");
  gutter.replaceChildren(...Array.from({ length: lines }, (_, i) =>
    el("span", { class: i + 1 === errorLine ? "error-line" : "", text: `${i + 1 === errorLine ? "▶" : ""}${i + 1}\n` })));
  gutter.scrollTop = $("#raw-text").scrollTop;
}

export function showRawError(items, extra = "") {
  const area = $("#raw-text");
  const out = $("#raw-error");
  out.hidden = false;
  out.textContent = [...items.map(itemText), extra].filter(Boolean).join("; ");
  area.setAttribute("aria-invalid", "true");
  const at = items.find((i) => i.line);
  if (at) {
    drawGutter(at.line);
    const lines = area.value.split("\n");
    let offset = 0;
    for (let i = 0; i < at.line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
    offset += Math.max(0, at.col - 1);
    area.focus();
    area.setSelectionRange(offset, Math.min(offset + 1, area.value.length));
    const lineHeight = parseFloat(getComputedStyle(area).lineHeight) || 20;
    area.scrollTop = Math.max(0, (at.line - 3) * lineHeight);
    $("#raw-error").dataset.line = String(at.line);
    $("#raw-error").dataset.col = String(at.col);
  } else {
    area.focus();
  }
}

export function clearErrors() {
  for (const e of $$(".field-error")) { e.hidden = true; e.textContent = ""; }
  for (const f of $$(".field")) f.classList.remove("invalid");
  for (const a of $$("#fields textarea")) a.removeAttribute("aria-invalid");
  $("#raw-error").hidden = true;
  $("#raw-text").removeAttribute("aria-invalid");
  drawGutter();
}

/** Mark each error at its field (the first one gets focus); returns the texts of those with no field. */
export function markFieldErrors(items) {
  const general = [];
  let first = null;
  for (const item of items) {
    const key = item.path.split(/[.[]/)[0];
    const box = $(`.field[data-field="${CSS.escape(key)}"]`);
    if (!box || key === "$") { general.push(itemText(item)); continue; }
    box.classList.add("invalid");
    const area = $("textarea", box);
    area.setAttribute("aria-invalid", "true");
    const out = $(".field-error", box);
    out.hidden = false;
    out.textContent = [out.textContent, itemText(item)].filter(Boolean).join("; ");
    first = first || area;
  }
  if (first) first.focus();
  return general;
}
