// blindrelay web client: the message log (messages, notices, collapsed unreadable runs),
// with what kinds.js adds to a message: its reply quote, "edited", "deleted", reactions,
// read receipts, and the search's matches.

import { actionable, actionsPanel, actionsToggle, reactionChips, whose } from './actions.js';
import { $, el, formatTime, linkify } from './dom.js';
import { errorText } from './errors.js';
import { cancelButton, fileBody } from './filebox.js';
import { firstLine } from './kinds.js';

const STATUS_TEXT = {
  queued: 'Not sent yet (offline); sent when reconnected',
  sending: 'Sending…',
  // The server acks a message once it has stored and relayed it; "Delivered" comes
  // from the recipients' pages (message-delivered).
  sent: 'Sent',
  failed: 'Not sent',
  cancelled: 'Cancelled',
};

const PROBLEM_TEXT = {
  'no-peer-key': 'Waiting for the sender’s key to decrypt this message…',
  undecryptable: 'This message could not be decrypted (wrong key or tampered with).',
  unsupported: 'This message was sent by a client this page cannot read.',
};

const plural = (n, one, many) => (n === 1 ? one : many);

export class MessageLog {
  constructor() {
    this.list = $('messages');
    this.els = new Map();
    /** Whether the log follows new messages (it does unless the reader scrolled up). */
    this.follow = true;
    this.collapseQueued = false;
    this.lastTop = 0;
    this.lastHeight = 0;
    /** The key of the message whose actions are open. */
    this.openActions = null;
    /** The search's words, lower-cased ('' when not searching). */
    this.query = '';
    /** What the actions do (set by the page): {reply, react, edit, delete}(record, ...). */
    this.handlers = null;
    /** Others' messages to watch until they have been in view (seen.js), set by the page. */
    this.seen = null;
    /** Called when the reader is back at the end of the log. */
    this.onBottom = null;
    this.list.addEventListener('scroll', () => this.onScroll(), { passive: true });
    // Actions close on a click elsewhere and on Escape, focus back on their "⋯".
    document.addEventListener('click', () => this.closeActions());
    this.list.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape' || !this.openActions) return;
      const key = this.openActions;
      this.closeActions();
      this.els.get(key)?.querySelector('.msg-actions-toggle')?.focus();
    });
    // The log's height changes with the panels around it (the invitation, a file preview,
    // the end of the room): a reader at the bottom stays there.
    new ResizeObserver(() => {
      this.lastHeight = this.list.clientHeight;
      this.keepAtBottom();
    }).observe(this.list);
  }

  /**
   * Only the reader scrolling up stops the log following. A scroll event also comes from
   * our own scrolling and from the browser when the log is resized, a frame later and maybe
   * after another resize: those leave the choice as it was.
   */
  onScroll() {
    const log = this.list;
    if (log.scrollHeight - log.scrollTop - log.clientHeight < 40) {
      this.follow = true;
      this.onBottom?.();
    } else if (log.scrollTop < this.lastTop && log.clientHeight === this.lastHeight) this.follow = false;
    this.lastTop = log.scrollTop;
    this.lastHeight = log.clientHeight;
  }

  reset() {
    this.follow = true;
    this.openActions = null;
    this.els.clear();
    this.list.replaceChildren();
    this.seen?.reset();
  }

  /** Whether the end of the log is in view. */
  atBottom() {
    const log = this.list;
    return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }

  toggleActions(c, r) {
    const before = this.openActions;
    this.openActions = before === r.key ? null : r.key;
    for (const key of [before, this.openActions]) {
      const rec = key && c.messages.get(key);
      if (rec) this.message(c, rec);
    }
    if (this.openActions) this.els.get(r.key)?.querySelector('.msg-actions')?.scrollIntoView({ block: 'nearest' });
    this.client = c;
  }

  closeActions() {
    const key = this.openActions;
    if (!key) return;
    this.openActions = null;
    const rec = this.client?.messages.get(key);
    if (rec) this.message(this.client, rec);
  }

  /** Scrolls to message `key` and marks it a moment (a reply's quote was clicked). */
  reveal(key) {
    const li = this.els.get(key);
    if (!li?.isConnected) return false;
    li.scrollIntoView({ block: 'center', behavior: matchMedia('(prefers-reduced-motion: reduce)').matches ? 'auto' : 'smooth' });
    li.classList.remove('flash');
    void li.offsetWidth;
    li.classList.add('flash');
    li.tabIndex = -1;
    li.focus({ preventScroll: true });
    return true;
  }

  /** Filters the log to the messages holding `query` (case-insensitive), marked; '' shows all. */
  search(c, query) {
    this.query = query.trim().toLowerCase();
    if (this.query) this.list.dataset.searching = 'true';
    else delete this.list.dataset.searching;
    let n = 0;
    for (const [key, li] of this.els) {
      const r = c.messages.get(key);
      if (!r) continue;
      this.message(c, r);
      if (li.dataset.match === 'true') n += 1;
    }
    if (!this.query) this.keepAtBottom();
    return n;
  }

  keepAtBottom() {
    if (!this.follow) return;
    this.list.scrollTop = this.list.scrollHeight;
    this.lastTop = this.list.scrollTop;
  }

  /** Inserts a message or notice element ordered by timestamp. */
  place(node, ts) {
    node.dataset.ts = String(ts);
    let before = null;
    for (let n = this.list.lastElementChild; n; n = n.previousElementSibling) {
      if (Number(n.dataset.ts) <= ts) break;
      before = n;
    }
    this.list.insertBefore(node, before);
    this.keepAtBottom();
  }

  notice({ text, kind, timestamp }) {
    this.place(el('li', { class: `notice notice-${kind}`, text: `${text} · ${formatTime(timestamp)}` }), timestamp);
  }

  message(c, r) {
    this.client = c;
    let li = this.els.get(r.key);
    if (r.control) {
      // A reaction, an edit, a deletion or a receipt: it changes other messages, and is not shown.
      li?.remove();
      this.els.delete(r.key);
      return;
    }
    const fresh = !li;
    if (fresh) {
      li = el('li');
      this.els.set(r.key, li);
    }
    const unreadable = r.problem === 'no-room-key' && !r.content;
    const deleted = c.notes.isDeleted(r.key);
    li.className = `msg ${r.mine ? 'mine' : 'theirs'}${unreadable ? ' unreadable' : ''}`;
    li.dataset.id = r.id;
    li.dataset.state = r.state;
    li.dataset.type = r.type;
    li.dataset.from = r.from;
    if (deleted) li.dataset.deleted = 'true';
    else delete li.dataset.deleted;
    if (r.gen !== undefined) li.dataset.gen = String(r.gen);
    const can = actionable(c, r) && this.handlers;
    const open = can && this.openActions === r.key;
    const edited = !deleted && c.notes.editOf(r.key) !== undefined;
    const parts = [el('p', { class: 'meta' },
      whoLabel(c, r),
      el('time', { dateTime: new Date(r.timestamp).toISOString(), text: formatTime(r.timestamp) }),
      edited && el('span', { class: 'edited', text: 'edited' }),
      can && actionsToggle(c, r, open, (rec) => this.toggleActions(c, rec)))];
    if (r.content?.reply && !deleted) parts.push(this.quote(c, r.content.reply));
    parts.push(this.body(c, r));
    if (!deleted && this.handlers) parts.push(reactionChips(c, r, this.handlers));
    if (open) parts.push(actionsPanel(c, r, this.handlers));
    if (r.mine) parts.push(this.status(c, r));
    else if (r.notKept) parts.push(el('p', { class: 'status', text: NOT_KEPT }));
    if (r.notKept) li.dataset.notKept = 'true';
    // The focus stays on the same control when the message is drawn again (a receipt, a reaction).
    const focused = li.contains(document.activeElement) ? document.activeElement.dataset.focus : null;
    li.replaceChildren(...parts.filter(Boolean));
    if (focused) li.querySelector(`[data-focus="${CSS.escape(focused)}"]`)?.focus({ preventScroll: true });
    if (this.query) li.dataset.match = String(!deleted && matches(c, r, this.query));
    else delete li.dataset.match;
    if (fresh) this.place(li, r.timestamp);
    else this.keepAtBottom();
    if (!r.mine && r.content && !r.seenHere) this.seen?.observe(li, r.key);
    this.queueCollapse(c);
  }

  /** A message that disappeared (its timer ran out, disappear.js): gone from the log. */
  remove(key) {
    this.els.get(key)?.remove();
    this.els.delete(key);
    if (this.openActions === key) this.openActions = null;
    if (this.client) this.queueCollapse(this.client);
  }

  /** A reply's quote of the message it answers: who and the first line; a click goes there. */
  quote(c, reply) {
    const key = `${reply.from}/${reply.id}`;
    const original = c.messages.get(key);
    let who = reply.from === c.me ? 'You' : c.labelOf(reply.from, reply.name);
    let text = reply.text;
    if (original?.content && !original.control) {
      who = original.mine ? 'You' : c.labelOf(original.from, original.fromName);
      if (c.notes.isDeleted(key)) text = 'This message was deleted';
      else if (original.type === 'text') text = firstLine(c.notes.editOf(key) ?? original.content.text);
      else text = original.content.name;
    }
    const inner = [el('span', { class: 'visually-hidden', text: 'In reply to ' }),
      el('span', { class: 'quote-who', text: who }), ': ', el('span', { class: 'quote-text', text })];
    if (!this.els.has(key)) return el('p', { class: 'quote' }, ...inner);
    const b = el('button', { type: 'button', class: 'quote', title: 'Show the message this replies to', 'data-focus': 'quote' }, ...inner);
    b.addEventListener('click', () => this.reveal(key));
    return b;
  }

  /**
   * Names again after the members changed: a look-alike arrived, or a safety number, or the
   * names of those who reacted and whom replies quote came with the member list.
   */
  relabel(c) {
    for (const [key, li] of this.els) {
      const r = c.messages.get(key);
      if (!r) continue;
      if (li.querySelector('.quote, .reactions')) {
        this.message(c, r);
        continue;
      }
      const old = li.querySelector('.who');
      if (!r.mine && old) old.replaceWith(whoLabel(c, r));
    }
  }

  body(c, r) {
    if (r.problem && !r.content) {
      return el('p', { class: 'body problem', text: PROBLEM_TEXT[r.problem] ?? PROBLEM_TEXT.undecryptable });
    }
    if (!r.content) return el('p', { class: 'body problem', text: 'Decrypting…' });
    if (c.notes.isDeleted(r.key)) return el('p', { class: 'body deleted', text: 'This message was deleted' });
    if (r.type === 'text') {
      const text = c.notes.editOf(r.key) ?? r.content.text;
      return el('p', { class: 'body' }, ...highlight(linkify(text), this.query));
    }
    return fileBody(c, r, () => this.keepAtBottom());
  }

  /** A file's upload progressed: only its status line changes. */
  progress(c, r) {
    const old = this.els.get(r.key)?.querySelector('.status');
    if (old) old.replaceWith(this.status(c, r));
  }

  status(c, r) {
    const status = el('p', { class: 'status', text: statusText(r, c.receiptsOn ? c.notes.seenBy(r.key).size : 0) });
    if (r.state === 'sending' && r.progress !== undefined) {
      status.append(' ', el('progress', { max: 100, value: r.progress, 'aria-label': 'Upload progress' }));
    }
    const cancel = cancelButton(c, r);
    if (cancel) status.append(cancel);
    if (r.state === 'failed') {
      const retry = el('button', { type: 'button', text: 'Retry', 'aria-label': `Retry sending ${whose(c, r)}` });
      retry.addEventListener('click', () => c.retry(r));
      status.append(retry);
    }
    return status;
  }

  /** Many renders (a history of hundreds) in one task: collapse once after them. */
  queueCollapse(c) {
    if (this.collapseQueued) return;
    this.collapseQueued = true;
    queueMicrotask(() => {
      this.collapseQueued = false;
      this.collapse(c);
    });
  }

  /**
   * Messages encrypted with a room key this member never got (sent before it joined) are
   * hidden; each run of them is summed up in one line.
   */
  collapse(c) {
    for (const s of this.list.querySelectorAll('.unreadable-summary')) s.remove();
    let run = [];
    const flush = () => {
      if (run.length) this.list.insertBefore(summary(c, run), run[0]);
      run = [];
    };
    for (const node of [...this.list.children]) {
      if (node.classList.contains('unreadable')) run.push(node);
      else flush();
    }
    flush();
  }
}

/** The sender's name over a message; marked when it looks like someone else's. */
function whoLabel(c, r) {
  if (r.mine) return el('span', { class: 'who', text: 'You', title: 'You' });
  const who = c.labelOf(r.from, r.fromName);
  const alike = c.looksAlike(r.from);
  return el('span', {
    class: 'who',
    text: who,
    title: alike ? `${who}: this name looks like another person’s here. The safety number (People) tells them apart.` : who,
    'data-alike': alike ? 'true' : undefined,
  });
}

function summary(c, run) {
  const n = run.length;
  const text = c.groupKeys.size
    ? `${n} earlier ${plural(n, 'message was', 'messages were')} sent before you joined and cannot be read`
    : `${n} ${plural(n, 'message is', 'messages are')} waiting for the room key…`;
  return el('li', { class: 'notice unreadable-summary', 'data-count': n, 'data-ts': run[0].dataset.ts, text });
}

/** Whether message `r` holds the search's `query` (its text as edited, or its file's name). */
function matches(c, r, query) {
  if (!r.content) return false;
  const text = r.type === 'text' ? c.notes.editOf(r.key) ?? r.content.text : r.content.name;
  return String(text ?? '').toLowerCase().includes(query);
}

/** Text nodes with each occurrence of `query` (lower-case) in a <mark>; links left whole. */
function highlight(nodes, query) {
  if (!query) return nodes;
  const out = [];
  for (const n of nodes) {
    if (typeof n !== 'string') {
      out.push(n);
      continue;
    }
    const lower = n.toLowerCase();
    let at = 0;
    for (let i = lower.indexOf(query); i !== -1; i = lower.indexOf(query, at)) {
      if (i > at) out.push(n.slice(at, i));
      out.push(el('mark', { text: n.slice(i, i + query.length) }));
      at = i + query.length;
    }
    if (at < n.length) out.push(n.slice(at));
  }
  return out;
}

function statusText(r, seen = 0) {
  if (r.state === 'waiting') {
    return r.waitingFor === 'room-key' ? 'Waiting for the room key…' : 'Waiting for the other person to join…';
  }
  let s = STATUS_TEXT[r.state] ?? '';
  if (r.state === 'sending' && r.progress !== undefined) s = `Sending… ${r.progress}%`;
  if (r.state === 'sent' && r.deliveredTo?.size) {
    s = r.group ? `Delivered to ${r.deliveredTo.size}` : 'Delivered';
  }
  // Read receipts (kinds.js): their pages showed it. A receipt implies the delivery.
  if (r.state === 'sent' && seen) {
    if (!r.deliveredTo?.size) s = r.group ? `Delivered to ${seen}` : 'Delivered';
    s += r.group ? ` · Seen by ${seen}` : ' · Seen';
  }
  if (r.state === 'failed' && r.failure) s += `: ${errorText(r.failure)}`;
  if (r.downloadedBy?.length) s += ` · Downloaded by ${r.downloadedBy.join(', ')}`;
  if (r.notKept) s += ` · ${NOT_KEPT}`;
  return s;
}

/** A message the server lost in a crash (client.js, tellRestart). */
const NOT_KEPT = 'Not kept by the server: later joiners will not get it';
