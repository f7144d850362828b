/** The bundle of `entry` (an absolute .ts path) in node_modules/.cache/tsunagi/, built when a source changed. */
export function bundleFor(entry: string, name: string): Promise<string>;
/** Imports `entry` from its bundle, or through tsx when bundling fails. */
export function importBundled(entry: string, name: string): Promise<Record<string, unknown>>;
