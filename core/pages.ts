/**
 * The one pagination loop: follows `next` from page to page until a page has none. Used by the SDK's
 * paginator, the watcher's change feed and the backend's own walks over a list.
 */
import type { Page } from './wire.ts';

/** Fetches one page; `next` is undefined for the first. */
export type PageFetcher<T> = (next: string | undefined) => Promise<Page<T>>;

/** Every page of a list, in order, fetched one at a time as the caller asks for it. */
export async function* pages<T>(fetchPage: PageFetcher<T>): AsyncGenerator<Page<T>> {
  let next: string | undefined;
  do {
    const page = await fetchPage(next);
    next = page.next;
    yield page;
  } while (next);
}

/** Every item of a list, all pages. */
export async function allItems<T>(fetchPage: PageFetcher<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const page of pages(fetchPage)) out.push(...page.items);
  return out;
}
