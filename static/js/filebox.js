// blindrelay web client: how a file message looks in the log (files.js sends and receives
// it): its preview (image, video, audio) and download link, "Receiving… 42%" while it
// arrives, the sender's Cancel, and what happened when it did not arrive whole.

import { el, formatSize } from './dom.js';

/** The body of a file message. `onLoad` is called when a preview has its size. */
export function fileBody(c, r, onLoad) {
  const f = r.content;
  const who = r.mine ? 'You' : c.labelOf(r.from, r.fromName);
  const name = `“${f.name}” (${formatSize(f.size)})`;
  const box = el('div', { class: 'file', 'data-file': fileState(f) });
  if (f.cancelled) {
    box.append(el('p', { class: 'body problem', text: r.mine
      ? `You cancelled sending ${name}; the others’ pages dropped what they got of it.`
      : `${who} cancelled sending ${name}: what arrived of it was dropped.` }));
    return box;
  }
  if (f.partial) {
    box.append(el('p', { class: 'body problem', text: `Only part of ${name} reached this page (${f.parts.got} of ${f.parts.n} parts): `
      + `it is larger than the server keeps for people who join later, so the rest is gone. ${r.mine ? 'Send it again if needed.' : `Ask ${who} to send it again.`}` }));
    return box;
  }
  if (f.damaged) {
    box.append(el('p', { class: 'body problem', text: `${name} arrived damaged (its digest does not match) and was dropped.` }));
    return box;
  }
  if (!f.complete) {
    box.append(el('p', { class: 'body receiving' }, `Receiving ${name}… ${f.received ?? 0}%`, ' ',
      el('progress', { max: 100, value: f.received ?? 0, 'aria-label': `Receiving ${f.name}` })));
    return box;
  }
  if (f.media === 'image' || f.image) {
    const img = el('img', { src: f.url, alt: `Image: ${f.name}` });
    img.addEventListener('load', onLoad, { once: true });
    box.append(img);
  } else if (f.media === 'video' || f.media === 'audio') {
    const player = el(f.media, { src: f.url, controls: true, preload: 'metadata', 'aria-label': `${f.media === 'video' ? 'Video' : 'Audio'}: ${f.name}` });
    player.addEventListener('loadedmetadata', onLoad, { once: true });
    box.append(player);
  }
  // The name once, as the download link, with the size beside it.
  const icon = { video: '🎬 ', audio: '🎵 ' }[f.media] ?? '📄 ';
  const link = el('a', { class: 'download', href: f.url, download: f.name, text: f.media === 'image' || f.image ? f.name : `${icon}${f.name}` });
  if (!r.mine) link.addEventListener('click', () => c.fileDownloaded(r));
  box.append(el('p', { class: 'body' }, link, el('span', { class: 'size', text: formatSize(f.size) })));
  if (r.mine && f.tooLargeToKeep && r.state !== 'cancelled') {
    box.append(el('p', { class: 'file-note', text: 'Too large for the server to keep for people who join later: they will get only part of it, or none.' }));
  }
  return box;
}

function fileState(f) {
  if (f.cancelled) return 'cancelled';
  if (f.partial) return 'partial';
  if (f.damaged) return 'damaged';
  return f.complete ? 'complete' : 'receiving';
}

/** The sender's Cancel while a file is on its way out. */
export function cancelButton(c, r) {
  if (!r.transfer || !['sending', 'waiting', 'queued'].includes(r.state)) return null;
  const b = el('button', { type: 'button', class: 'file-cancel', text: 'Cancel', 'aria-label': `Cancel sending ${r.content.name}`, 'data-focus': 'cancel' });
  b.addEventListener('click', () => c.files.cancel(r));
  return b;
}
