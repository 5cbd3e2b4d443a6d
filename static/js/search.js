// blindrelay web client: searching the conversation loaded on this page (it never leaves the
// page: the server holds only ciphertext). The log shows only the matching messages, the
// words marked; Escape or ✕ clears the search and shows everything again.

import { $ } from './dom.js';

export class Search {
  /** `client()` is the room's RoomClient (or null); `log` the MessageLog. */
  constructor(log, client) {
    this.log = log;
    this.client = client;
    $('search-toggle').addEventListener('click', () => (this.isOpen() ? this.close() : this.open()));
    $('search-close').addEventListener('click', () => this.close());
    $('search-input').addEventListener('input', () => this.run());
    $('search-input').addEventListener('keydown', (e) => {
      if (e.key !== 'Escape') return;
      e.preventDefault();
      this.close();
    });
  }

  isOpen() {
    return !$('search-bar').hidden;
  }

  open() {
    $('search-bar').hidden = false;
    $('search-toggle').setAttribute('aria-expanded', 'true');
    $('search-input').focus();
  }

  /** Clears the search and shows the whole conversation again; the focus goes back to the toggle. */
  close({ focus = true } = {}) {
    const was = this.isOpen();
    $('search-input').value = '';
    $('search-bar').hidden = true;
    $('search-toggle').setAttribute('aria-expanded', 'false');
    this.run();
    if (was && focus) $('search-toggle').focus();
  }

  run() {
    const c = this.client();
    const query = $('search-input').value;
    if (!c) return;
    this.log.search(c, query);
    this.count();
  }

  /** How many messages match (the log marks them as it draws them). */
  count() {
    const n = this.log.list.querySelectorAll(':scope > li[data-match="true"]').length;
    const text = !this.log.query ? '' : n === 0 ? 'No messages match' : `${n} ${n === 1 ? 'message matches' : 'messages match'}`;
    if ($('search-count').textContent !== text) $('search-count').textContent = text;
  }
}
