// Layout checks the browser tests share: a box that holds its content, and words that
// read left to right next to names a client chose.

/**
 * Asserts that `locator`'s element does not overflow: its content fits its width
 * (scrollWidth <= clientWidth + 1), its box lies inside the viewport, and the page itself
 * has no horizontal scroll.
 */
export async function fitsItsBox(locator, what) {
  const r = await locator.first().evaluate((el) => {
    const b = el.getBoundingClientRect();
    const root = document.documentElement;
    return { scrollWidth: el.scrollWidth, clientWidth: el.clientWidth, left: b.left, right: b.right, viewport: root.clientWidth, page: root.scrollWidth };
  });
  if (r.scrollWidth > r.clientWidth + 1) throw new Error(`${what} overflows its box: ${JSON.stringify(r)}`);
  if (r.left < 0 || r.right > r.viewport + 1) throw new Error(`${what} is outside the viewport: ${JSON.stringify(r)}`);
  if (r.page > r.viewport + 1) throw new Error(`the page scrolls sideways because of ${what}: ${JSON.stringify(r)}`);
}

/**
 * Asserts that `word`, in a text node under `locator`'s element, is laid out left to right:
 * its first letter left of its last (a bidi override leaking out of a name next to it
 * would mirror it).
 */
export async function readsLeftToRight(locator, word) {
  const r = await locator.first().evaluate((el, word) => {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const i = n.data.indexOf(word);
      if (i < 0) continue;
      const box = (k) => {
        const range = document.createRange();
        range.setStart(n, k);
        range.setEnd(n, k + 1);
        return range.getBoundingClientRect();
      };
      const first = box(i);
      const last = box(i + word.length - 1);
      return { first: first.left, last: last.left, line: Math.abs(first.top - last.top) < 2 };
    }
    return null;
  }, word);
  if (!r) throw new Error(`"${word}" is not on the page`);
  if (!r.line || !(r.first < r.last)) throw new Error(`"${word}" does not read left to right: ${JSON.stringify(r)}`);
}
