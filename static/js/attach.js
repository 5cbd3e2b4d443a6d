// blindrelay web client: files waiting to be sent. Attach, paste or drop put them in a
// preview (name, size, a thumbnail for images) where they can be sent or cancelled.

import { $, el, formatSize } from './dom.js';
import { MAX_FILE_BYTES, IMAGE_TYPES, fileTooLarge } from './client.js';

export class Attachments {
  /**
   * @param {object} hooks
   * @param {() => boolean} hooks.accepting  whether the room takes files now
   * @param {(files: File[]) => void} hooks.send
   * @param {(err: Error) => void} hooks.error
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.files = [];
    this.urls = [];
  }

  add(files) {
    for (const file of files) {
      if (file.size > MAX_FILE_BYTES) {
        this.hooks.error(fileTooLarge(file));
      } else {
        this.files.push(file);
      }
    }
    this.render();
    if (this.files.length) $('attach-send').focus();
  }

  send() {
    const files = this.files;
    this.clear();
    if (files.length) this.hooks.send(files);
    $('message-input').focus();
  }

  clear() {
    for (const u of this.urls) URL.revokeObjectURL(u);
    this.urls = [];
    this.files = [];
    this.render();
  }

  render() {
    const items = this.files.map((f) => {
      let thumb = null;
      if (IMAGE_TYPES.includes(f.type)) {
        const url = URL.createObjectURL(f);
        this.urls.push(url);
        thumb = el('img', { src: url, alt: '' });
      }
      return el('li', {}, thumb, el('span', { class: 'name', text: f.name || 'Pasted file' }),
        el('span', { class: 'size', text: formatSize(f.size) }));
    });
    $('attach-list').replaceChildren(...items);
    $('attach-preview-title').textContent = this.files.length === 1 ? 'Send this file?' : `Send these ${this.files.length} files?`;
    $('attach-preview').hidden = !this.files.length;
  }

  bind() {
    $('attach').addEventListener('click', () => $('file-input').click());
    $('file-input').addEventListener('change', () => {
      const files = [...$('file-input').files];
      $('file-input').value = '';
      this.add(files);
    });
    $('attach-send').addEventListener('click', () => this.send());
    $('attach-cancel').addEventListener('click', () => {
      this.clear();
      $('message-input').focus();
    });
    document.addEventListener('paste', (e) => {
      const files = [...(e.clipboardData?.files ?? [])];
      if (!files.length || !this.hooks.accepting()) return;
      e.preventDefault();
      this.add(files);
    });
    this.bindDrop();
  }

  /** A file dropped anywhere never makes the browser leave the room (its default). */
  bindDrop() {
    const chat = $('chat');
    const dragging = (e) => [...(e.dataTransfer?.types ?? [])].includes('Files');
    window.addEventListener('dragover', (e) => {
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = this.hooks.accepting() && dragging(e) ? 'copy' : 'none';
    });
    window.addEventListener('dragenter', (e) => {
      if (this.hooks.accepting() && dragging(e)) chat.classList.add('dropping');
    });
    window.addEventListener('dragleave', (e) => {
      if (!e.relatedTarget) chat.classList.remove('dropping');
    });
    window.addEventListener('drop', (e) => {
      e.preventDefault();
      chat.classList.remove('dropping');
      const files = [...(e.dataTransfer?.files ?? [])];
      if (files.length && this.hooks.accepting()) this.add(files);
    });
  }
}
