// Small DOM helpers shared by every page module.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

/** el("button", {class: "x", text: "Go", onclick: f}, child, …): attributes, listeners, text and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

export const short = (sha) => (sha ? sha.slice(0, 12) : "—");

/** Show a message in a live region (role=status or aria-live): the element is refilled, so it is announced. */
export function announce(region, text, kind = "") {
  region.className = `banner ${kind}`.trim();
  region.hidden = !text;
  region.replaceChildren(...(Array.isArray(text) ? text : [text]));
}

/** Give every cell of `table` its column's header as data-label (a phone shows rows as labelled cards). */
export function labelCells(table) {
  const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
  for (const row of table.querySelectorAll("tbody tr")) {
    [...row.children].forEach((cell, i) => { if (heads[i] && cell.colSpan === 1) cell.dataset.label = heads[i]; });
  }
}
