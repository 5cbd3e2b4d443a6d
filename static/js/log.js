// blindrelay web client: the message log (messages, notices, collapsed unreadable runs).

import { $, el, formatSize, formatTime, linkify } from './dom.js';
import { errorText } from './errors.js';

const STATUS_TEXT = {
  queued: 'Not sent yet (offline); sent when reconnected',
  sending: 'Sending…',
  // The server acks a message once it has stored and relayed it; "Delivered" comes
  // from the recipients' pages (message-delivered).
  sent: 'Sent',
  failed: 'Not sent',
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
    this.list.addEventListener('scroll', () => this.onScroll(), { passive: true });
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
    if (log.scrollHeight - log.scrollTop - log.clientHeight < 40) this.follow = true;
    else if (log.scrollTop < this.lastTop && log.clientHeight === this.lastHeight) this.follow = false;
    this.lastTop = log.scrollTop;
    this.lastHeight = log.clientHeight;
  }

  reset() {
    this.follow = true;
    this.els.clear();
    this.list.replaceChildren();
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
    let li = this.els.get(r.key);
    const fresh = !li;
    if (fresh) {
      li = el('li');
      this.els.set(r.key, li);
    }
    const unreadable = r.problem === 'no-room-key' && !r.content;
    li.className = `msg ${r.mine ? 'mine' : 'theirs'}${unreadable ? ' unreadable' : ''}`;
    li.dataset.id = r.id;
    li.dataset.state = r.state;
    li.dataset.type = r.type;
    if (r.gen !== undefined) li.dataset.gen = String(r.gen);
    const parts = [el('p', { class: 'meta' },
      whoLabel(c, r),
      el('time', { dateTime: new Date(r.timestamp).toISOString(), text: formatTime(r.timestamp) }))];
    parts.push(this.body(c, r));
    if (r.mine) parts.push(this.status(c, r));
    else if (r.notKept) parts.push(el('p', { class: 'status', text: NOT_KEPT }));
    if (r.notKept) li.dataset.notKept = 'true';
    li.replaceChildren(...parts);
    if (fresh) this.place(li, r.timestamp);
    else this.keepAtBottom();
    this.queueCollapse(c);
  }

  /** Names again after the members changed: a look-alike arrived, or a safety number. */
  relabel(c) {
    for (const [key, li] of this.els) {
      const r = c.messages.get(key);
      const old = li.querySelector('.who');
      if (r && !r.mine && old) old.replaceWith(whoLabel(c, r));
    }
  }

  body(c, r) {
    if (r.problem && !r.content) {
      return el('p', { class: 'body problem', text: PROBLEM_TEXT[r.problem] ?? PROBLEM_TEXT.undecryptable });
    }
    if (!r.content) return el('p', { class: 'body problem', text: 'Decrypting…' });
    if (r.type === 'text') return el('p', { class: 'body' }, ...linkify(r.content.text));
    const f = r.content;
    const box = el('div', { class: 'file' });
    if (f.image) {
      const img = el('img', { src: f.url, alt: `Image: ${f.name}` });
      img.addEventListener('load', () => this.keepAtBottom(), { once: true });
      box.append(img);
    }
    // The name once, as the download link, with the size beside it.
    const link = el('a', { class: 'download', href: f.url, download: f.name, text: f.image ? f.name : `📄 ${f.name}` });
    if (!r.mine) link.addEventListener('click', () => c.fileDownloaded(r));
    box.append(el('p', { class: 'body' }, link, el('span', { class: 'size', text: formatSize(f.size) })));
    return box;
  }

  /** A file's upload progressed: only its status line changes. */
  progress(c, r) {
    const old = this.els.get(r.key)?.querySelector('.status');
    if (old) old.replaceWith(this.status(c, r));
  }

  status(c, r) {
    const status = el('p', { class: 'status', text: statusText(r) });
    if (r.state === 'sending' && r.progress !== undefined) {
      status.append(' ', el('progress', { max: 100, value: r.progress, 'aria-label': 'Upload progress' }));
    }
    if (r.state === 'failed') {
      const retry = el('button', { type: 'button', text: 'Retry' });
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

function statusText(r) {
  if (r.state === 'waiting') {
    return r.waitingFor === 'room-key' ? 'Waiting for the room key…' : 'Waiting for the other person to join…';
  }
  let s = STATUS_TEXT[r.state] ?? '';
  if (r.state === 'sending' && r.progress !== undefined) s = `Sending… ${r.progress}%`;
  if (r.state === 'sent' && r.deliveredTo?.size) {
    s = r.group ? `Delivered to ${r.deliveredTo.size}` : 'Delivered';
  }
  if (r.state === 'failed' && r.failure) s += `: ${errorText(r.failure)}`;
  if (r.downloadedBy?.length) s += ` · Downloaded by ${r.downloadedBy.join(', ')}`;
  if (r.notKept) s += ` · ${NOT_KEPT}`;
  return s;
}

/** A message the server lost in a crash (client.js, tellRestart). */
const NOT_KEPT = 'Not kept by the server: later joiners will not get it';
