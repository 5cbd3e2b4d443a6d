// blindrelay web client: small DOM and text helpers shared by the page's modules.

export const $ = (id) => document.getElementById(id);

/** An element with attributes and children; text always goes in as text, never as HTML. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('data-') || k.startsWith('aria-')) node.setAttribute(k, String(v));
    else if (k in node) node[k] = v;
    else node.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

export function formatSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function formatTime(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

const URL_RE = /\bhttps?:\/\/[^\s<>"']+/gi;
/** Punctuation that ends a sentence rather than the address it follows. */
const TRAILING_RE = /[.,;:!?'")\]]+$/;

/**
 * Text with its http(s) addresses as links: DOM nodes only (nothing is parsed as HTML),
 * opened in a new tab without a referrer or a handle on this page.
 */
export function linkify(text) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    let href = match[0];
    const trailing = TRAILING_RE.exec(href)?.[0] ?? '';
    href = href.slice(0, href.length - trailing.length);
    const url = safeUrl(href);
    if (!url) continue;
    nodes.push(text.slice(last, match.index));
    nodes.push(el('a', { href: url, text: href, target: '_blank', rel: 'noopener noreferrer' }));
    last = match.index + href.length;
  }
  nodes.push(text.slice(last));
  return nodes.filter((n) => n !== '');
}

function safeUrl(s) {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}
