// blindrelay web client: where unread messages begin. Messages that arrive while the page is
// not looked at, or while the reader is scrolled up, get a "New messages" line before the
// first of them; scrolled up, a "Jump to new messages" button takes the reader there.

import { $, el } from './dom.js';

export class UnreadMarker {
  /**
   * @param {import('./log.js').MessageLog} log
   * @param {import('./seen.js').Attention} attention
   */
  constructor(log, attention) {
    this.log = log;
    this.attention = attention;
    this.divider = null;
    /** Keys of the messages after the divider not yet in view. */
    this.unseen = new Set();
    this.button = $('jump-new');
    this.button.addEventListener('click', () => this.jump());
    log.onBottom = () => this.hideJump();
  }

  /** Someone else's message arrived live and is drawn (log.js). */
  arrived(record) {
    const li = this.log.els.get(record.key);
    if (!li?.isConnected) return;
    const following = this.log.follow && this.log.atBottom();
    if (following && this.attention.attentive) return;
    this.unseen.add(record.key);
    // A new run of unread messages moves the line; one already running keeps it.
    if (!this.divider?.isConnected || this.unseen.size === 1) this.placeDivider(li);
    if (!following) this.showJump();
  }

  placeDivider(li) {
    this.divider?.remove();
    this.divider = el('li', { class: 'unread-divider', role: 'separator', 'aria-label': 'New messages' },
      el('span', { text: 'New messages' }));
    this.divider.dataset.ts = li.dataset.ts;
    li.before(this.divider);
  }

  /** A message was in view in a looked-at page (seen.js). */
  seen(key) {
    this.unseen.delete(key);
  }

  showJump() {
    this.button.hidden = false;
  }

  hideJump() {
    if (this.button.hidden) return;
    const hadFocus = document.activeElement === this.button;
    this.button.hidden = true;
    if (hadFocus) this.log.list.focus({ preventScroll: true });
  }

  /** To the first new message (the divider), or the end of the log. */
  jump() {
    if (this.divider?.isConnected && this.unseen.size) {
      this.divider.scrollIntoView({ block: 'start' });
    } else {
      this.log.follow = true;
      this.log.keepAtBottom();
    }
    this.hideJump();
    this.log.list.focus({ preventScroll: true });
  }

  /** The person wrote: what came before is read. */
  clear() {
    this.divider?.remove();
    this.divider = null;
    this.unseen.clear();
    this.hideJump();
  }
}
