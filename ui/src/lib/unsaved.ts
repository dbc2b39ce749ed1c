// Work typed but not yet handed to the core (an autosave still waiting for its pause). Leaving
// a screen sends it as the screen goes; locking and signing out end the session first, after
// which the core refuses every write, so they ask for it here before they go.

const pending = new Set<() => Promise<unknown>>();

// Locking must not wait on a slow reply: past this, it locks anyway.
const AT_MOST_MS = 2_000;

/** Registers a function that sends what is still unsaved; returns its removal. */
export function holdUnsaved(flush: () => Promise<unknown>): () => void {
  pending.add(flush);
  return () => { pending.delete(flush); };
}

/** Sends everything still unsaved, waiting at most a moment. Never throws: each screen shows
 * its own failures. */
export async function flushUnsaved(): Promise<void> {
  if (!pending.size) return;
  const all = Promise.allSettled([...pending].map((f) => f()));
  await Promise.race([all, new Promise((r) => setTimeout(r, AT_MOST_MS))]);
}
