// blindrelay web client: which of the others' messages the person has actually had in view,
// in a page that is visible and focused. Read receipts and the unread divider follow it.

/** Whether the person is looking at this page: visible and focused (events, no polling). */
export class Attention extends EventTarget {
  constructor() {
    super();
    this.attentive = document.visibilityState === 'visible' && document.hasFocus();
    const set = (on) => {
      if (on === this.attentive) return;
      this.attentive = on;
      this.dispatchEvent(new Event('change'));
    };
    window.addEventListener('focus', () => set(document.visibilityState === 'visible'));
    window.addEventListener('blur', () => set(false));
    document.addEventListener('visibilitychange', () => set(document.visibilityState === 'visible' && document.hasFocus()));
  }
}

/**
 * Watches message elements in the log: `onSeen(key)` once one is at least half in view (or
 * fills half the log) while the person looks at the page.
 */
export class SeenTracker {
  constructor(root, attention, onSeen) {
    this.attention = attention;
    this.onSeen = onSeen;
    this.keys = new Map();
    this.visible = new Set();
    this.io = new IntersectionObserver((entries) => {
      for (const e of entries) {
        const inView = e.isIntersecting && (e.intersectionRatio >= 0.5
          || e.intersectionRect.height >= 0.5 * (e.rootBounds?.height ?? Infinity));
        if (inView) this.visible.add(e.target);
        else this.visible.delete(e.target);
      }
      this.report();
    }, { root, threshold: [0, 0.5, 1] });
    attention.addEventListener('change', () => this.report());
  }

  observe(node, key) {
    if (this.keys.get(node) === key) return;
    this.keys.set(node, key);
    this.io.observe(node);
  }

  report() {
    if (!this.attention.attentive) return;
    for (const node of [...this.visible]) {
      const key = this.keys.get(node);
      this.visible.delete(node);
      this.keys.delete(node);
      this.io.unobserve(node);
      if (node.isConnected && key) this.onSeen(key);
    }
  }

  /** Whether `node` is being watched and not yet seen. */
  watching(node) {
    return this.keys.has(node);
  }

  reset() {
    this.io.disconnect();
    this.keys.clear();
    this.visible.clear();
  }
}
