// Modal dialogs on the native <dialog>: showModal() makes the page behind inert and keeps focus inside.

import { $, el } from "./dom.js";

/**
 * Ask the operator: resolves true when `confirmText` is pressed, false on cancel or Escape.
 * `body` is a node (a diff, a list); focus starts on the cancel button so nothing is confirmed by accident.
 */
export function confirmDialog({ title, body, confirmText, cancelText = "Отмена", danger = false, id = "confirm" }) {
  const dialog = $("#confirm");
  const titleId = "confirm-title";
  const confirm = el("button", { type: "button", id: "confirm-ok", class: danger ? "danger-fill" : "", text: confirmText });
  const cancel = el("button", { type: "button", id: "confirm-cancel", class: "secondary", text: cancelText });
  dialog.dataset.purpose = id;
  dialog.setAttribute("aria-labelledby", titleId);
  dialog.replaceChildren(
    el("h2", { id: titleId, text: title }),
    el("div", { class: "dialog-body" }, body || ""),
    el("div", { class: "dialog-actions" }, cancel, confirm),
  );
  return new Promise((resolve) => {
    const done = (value) => {
      dialog.removeEventListener("close", onClose);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const onClose = () => done(false);
    dialog.addEventListener("close", onClose);
    confirm.addEventListener("click", () => done(true));
    cancel.addEventListener("click", () => done(false));
    dialog.showModal();
    cancel.focus();
  });
}

const FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

/**
 * Keep Tab inside every open modal dialog: from the last control back to the first and the other way
 * round (the browser alone would move focus out to its own toolbar).
 */
export function trapFocus() {
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Tab") return;
    const dialog = [...document.querySelectorAll("dialog[open]")].pop();
    if (!dialog) return;
    const items = [...dialog.querySelectorAll(FOCUSABLE)].filter((n) => !n.closest("[hidden]") && n.getClientRects().length);
    if (!items.length) { e.preventDefault(); return; }
    const first = items[0];
    const last = items[items.length - 1];
    const inside = dialog.contains(document.activeElement);
    if (e.shiftKey && (document.activeElement === first || !inside)) { e.preventDefault(); last.focus(); }
    else if (!e.shiftKey && (document.activeElement === last || !inside)) { e.preventDefault(); first.focus(); }
  });
}
