// DOM helpers: elements, dialogs, the alert line, dates, the transcript's decoding.

/** An element: h('button', {type: 'button', onclick}, 'text', child, ...). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'class') element.className = value;
    else if (name === 'dataset') Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Replaces an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  for (const child of children.flat()) {
    if (child !== undefined && child !== null && child !== false) element.append(child);
  }
  return element;
}

const alertBox = () => document.getElementById('alert');

/** Shows an error (a Dataverse message) in words, until dismissed or replaced. */
export function showError(error, context) {
  const box = alertBox();
  const text = error instanceof Error ? error.message : String(error);
  const code = error && error.code ? ` (${error.code})` : '';
  fill(
    box,
    h('span', { class: 'alert-text' }, context ? `${context}: ` : '', text, code),
    h('button', { type: 'button', class: 'link', onclick: hideAlert }, 'Dismiss'),
  );
  box.className = 'alert error';
  box.hidden = false;
}

export function showNotice(text) {
  const box = alertBox();
  fill(box, h('span', { class: 'alert-text' }, text), h('button', { type: 'button', class: 'link', onclick: hideAlert }, 'Dismiss'));
  box.className = 'alert notice';
  box.hidden = false;
}

export function hideAlert() {
  alertBox().hidden = true;
}

/**
 * A modal dialog (the native <dialog>: Esc closes it, focus stays inside). `build(close)` returns
 * its body; `onSubmit(form)` runs on the primary button or Enter and closes the dialog when it
 * resolves; its error is shown inside the dialog.
 */
export function dialog({ title, body, submit = 'Save', onSubmit }) {
  const error = h('p', { class: 'dialog-error', role: 'alert', hidden: true });
  const form = h('form', { method: 'dialog', class: 'dialog-form' });
  const element = h('dialog', { 'aria-label': title }, form);
  const close = () => {
    element.close();
    element.remove();
  };
  const primary = h('button', { type: 'submit', class: 'primary' }, submit);
  fill(
    form,
    h('h2', {}, title),
    body,
    error,
    h('div', { class: 'actions' }, h('button', { type: 'button', onclick: close }, 'Cancel'), primary),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    primary.disabled = true;
    error.hidden = true;
    try {
      await onSubmit(form);
      close();
    } catch (e) {
      fill(error, e.message + (e.code ? ` (${e.code})` : ''));
      error.hidden = false;
    } finally {
      primary.disabled = false;
    }
  });
  element.addEventListener('close', () => element.remove());
  document.body.append(element);
  element.showModal();
  const first = form.querySelector('input, select, textarea');
  if (first) first.focus();
  return element;
}

/** A labelled form field. */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2)}`;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', {}, hint) : null);
}

export function when(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
}

/** The messages of a transcript note: its documentbody is base64 of UTF-8 JSON. */
export function decodeTranscript(documentbody) {
  if (!documentbody) return [];
  try {
    const bytes = Uint8Array.from(atob(documentbody), (c) => c.charCodeAt(0));
    const messages = JSON.parse(new TextDecoder().decode(bytes));
    return Array.isArray(messages) ? messages : [];
  } catch {
    return [];
  }
}

/** Who wrote a message: 'customer', 'agent' or 'system', and a display name. */
export function author(message) {
  const from = message.from || {};
  if (from.phone) return { kind: 'customer', name: from.phone.displayName || 'Customer' };
  if (from.user) return { kind: 'agent', name: from.user.displayName || 'Agent' };
  return { kind: 'system', name: (from.application && from.application.displayName) || 'System' };
}

/** A reply's delivery status and error code, from its tags. */
export function delivery(message) {
  const tags = String(message.tags || '').split(',');
  const status = tags.find((t) => t.startsWith('deliveryStatus-'));
  const error = tags.find((t) => t.startsWith('errorCode-'));
  return {
    status: status ? status.slice('deliveryStatus-'.length) : null,
    error: error ? error.slice('errorCode-'.length) : null,
  };
}

const TICKS = { queued: '✓', sent: '✓', delivered: '✓✓', undelivered: '✗', failed: '✗' };

/** The delivery ticks of a reply, with their meaning for screen readers and a tooltip. */
export function ticks(message) {
  const { status, error } = delivery(message);
  if (!status) return null;
  const words = error ? `${status}, error ${error}` : status;
  return h('span', { class: `ticks ticks-${status}`, title: words, 'aria-label': `Delivery: ${words}` }, TICKS[status] || '·');
}
